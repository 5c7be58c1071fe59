// The IIFE build's entry: the global Herald is the class itself, in a page
// and in a Web Worker.
import { Herald } from "./herald";

(globalThis as any).Herald = Herald;
