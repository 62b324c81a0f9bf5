// Generated from shared/contract/registry/events.yaml by `telemetry registry ts`.
// Do not edit: `make test` fails when this file has drifted from the registry.

export interface EventProps {
  /** A reviewer confirmed, dismissed or relabelled a bias the model flagged. (v1) */
  "bias.override": {
    /** Id of the node holding the flag. */
    node_id: string;
    /** The bias the model flagged. */
    bias_type: "confirmation" | "anchoring" | "framing" | "availability" | "authority" | "in_group" | "other";
    /** What the reviewer did. */
    action: "confirm" | "dismiss" | "relabel";
    /** The reviewer's label when the action is relabel. */
    new_bias_type?: "confirmation" | "anchoring" | "framing" | "availability" | "authority" | "in_group" | "other";
    /** The reviewer's account id (stored as its pseudonym). */
    reviewer_id?: string;
  };
  /** A reader granted or withdrew consent to product analytics. (v1) */
  "consent.update": {
    /** Whether analytics consent is granted. */
    analytics: boolean;
    /** Version of the privacy policy shown. */
    policy_version?: string;
  };
  /** A reader opened the detail panel of a node in the conversation map. (v1) */
  "detail_panel.view": {
    /** Id of the node whose panel was opened. */
    node_id: string;
    /** Which tab of the panel was shown. */
    panel: "bias" | "severity" | "frames" | "simulacra" | "sources";
    /** How long the panel stayed open. */
    duration_ms?: number;
  };
  /** A reader rated an analysis. Only a rating and a reason code, never free text. (v1) */
  "feedback.submit": {
    /** Rating from 1 (poor) to 5 (excellent). */
    rating: number;
    /** Reason code picked in the form. */
    reason?: "accurate" | "inaccurate" | "unclear" | "too_slow" | "missing_context" | "other";
    /** What the feedback is about. */
    target?: "analysis" | "node" | "bias" | "frame" | "simulacra";
    /** Email given for a follow-up (stored as its pseudonym only). */
    contact_email?: string;
  };
  /** A reader collapsed an expanded node of the conversation map. (v1) */
  "node.collapse": {
    /** Id of the collapsed node. */
    node_id: string;
    /** Depth of the node in the map (root = 0). */
    depth?: number;
  };
  /** A reader expanded a node of the conversation map to show its children. (v1) */
  "node.expand": {
    /** Id of the expanded node. */
    node_id: string;
    /** Depth of the node in the map (root = 0). */
    depth?: number;
    /** Children revealed by the expansion. */
    child_count?: number;
  };
  /** A reviewer changed the severity the model gave to a finding. (v1) */
  "severity.override": {
    /** Id of the node holding the finding. */
    node_id: string;
    /** Severity before the override. */
    from_severity: "none" | "low" | "medium" | "high" | "critical";
    /** Severity chosen by the reviewer. */
    to_severity: "none" | "low" | "medium" | "high" | "critical";
    /** The reviewer's account id (stored as its pseudonym). */
    reviewer_id?: string;
  };
  /** The result of a performance.measure() in the browser. (v1) */
  "ui.performance": {
    /** Name of the measure (a code, never user text). */
    name: string;
    /** Measured duration in milliseconds. */
    duration_ms: number;
  };
}

export type EventName = keyof EventProps;
