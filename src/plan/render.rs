//! Rendering plans: text for `cutover plan`, Mermaid and DOT for `cutover graph`.
