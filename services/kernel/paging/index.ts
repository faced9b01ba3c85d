export { counterPosition, keysetPosition, pageTokens, sequencePosition, type PagePosition, type PageTokens } from "./page-token.js";
