// A browser-like global environment (jsdom) for the client under Node's test runner.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>", { url: "https://app.example.test/" });
const w = dom.window as unknown as Record<string, unknown> & Window;
const g = globalThis as Record<string, unknown>;
for (const key of ["window", "document", "localStorage", "sessionStorage", "Event"]) {
  g[key] = key === "window" ? w : (w as unknown as Record<string, unknown>)[key];
}
Object.defineProperty(globalThis, "navigator", { configurable: true, value: w.navigator });
g.addEventListener = w.addEventListener.bind(w);
g.dispatchEvent = w.dispatchEvent.bind(w);

export function setHidden(hidden: boolean): void {
  Object.defineProperty(w.document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
  w.dispatchEvent(new w.Event("visibilitychange"));
}

export const win = w;
