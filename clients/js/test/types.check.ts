import type { EventProps } from "../src/events";
import { track } from "../src/index";

// Compile-time checks only (tsc --noEmit, `npm run typecheck`): each @ts-expect-error must fail.
export function registryTypes(): unknown[] {
  {
    const ok: EventProps["detail_panel.view"] = { node_id: "n-1", panel: "bias", duration_ms: 5 };
    // @ts-expect-error panel must be one of the registry's values
    const badPanel: EventProps["detail_panel.view"] = { node_id: "n-1", panel: "colours" };
    // @ts-expect-error undeclared properties are refused
    const extra: EventProps["node.expand"] = { node_id: "n", comment: "free text" };
    // @ts-expect-error x-pii: drop fields are not part of the browser's types
    const dropped: EventProps["feedback.submit"] = { rating: 5, page_url: "https://x" };
    // @ts-expect-error unknown events do not compile
    const unknown = () => track("made.up", {});
    return [ok, badPanel, extra, dropped, unknown];
  }
}
