export { parseInfo, parseInfoList, summarizeInfo } from './info.js';
export type { InfoSections, InfoSummary } from './info.js';
export { createNodeClient, nodeClientOptions, tlsOptionsFrom } from './connection.js';
export type { NodeClientOptions } from './connection.js';
export { sampleNode } from './sample.js';
