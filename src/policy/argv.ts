// Moved to the SSH folder; this re-export stays only until the SSH session imports its own copy.
export { parseCommandLine, type ParsedCommandLine } from '../adapters/ssh/argv.ts';
