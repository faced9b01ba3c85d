/**
 * Types of the parts of html-to-text (v10, which ships no declarations) that Nexus uses.
 * See https://github.com/html-to-text/node-html-to-text#options.
 */
declare module "html-to-text" {
  /** One selector's formatting rule. */
  export interface SelectorDefinition {
    selector: string;
    format?: string;
    options?: Record<string, unknown>;
  }
  /** Conversion options (subset). */
  export interface HtmlToTextOptions {
    wordwrap?: number | false | null;
    preserveNewlines?: boolean;
    selectors?: SelectorDefinition[];
    limits?: { maxInputLength?: number };
  }
  /** Converts an HTML document or fragment to plain text. */
  export function convert(html: string, options?: HtmlToTextOptions): string;
}
