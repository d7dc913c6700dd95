//! RFC 6121 subscription state machine (filled in by the subscription work).
