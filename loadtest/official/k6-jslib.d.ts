// Types for the remote jslib modules imported by loadtest/official/rinha.k6.js. k6 downloads them at run time;
// TypeScript cannot resolve an https:// specifier, so declare the parts the script uses.
// Self-contained on purpose (no import of 'k6'): the repository's root tsconfig also includes this file.

declare module 'https://jslib.k6.io/k6-summary/0.0.2/index.js' {
  export interface TextSummaryOptions {
    /** Prefix for every line (default one space). */
    indent?: string;
    /** ANSI colours (default true). */
    enableColors?: boolean;
  }
  /** k6's end-of-test text summary, built from the handleSummary() data object. */
  export function textSummary(data: object, options?: TextSummaryOptions): string;
  /** JUnit XML with one test case per threshold. */
  export function jUnit(data: object, options?: { name?: string; classname?: string }): string;
}
