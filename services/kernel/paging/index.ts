export { counterPosition, keysetPosition, type PagePosition, type PageTokens, pageTokens, sequencePosition } from "./page-token.js";
