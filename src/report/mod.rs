//! Run reports: JSON, Markdown, timeline.
