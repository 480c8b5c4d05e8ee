//! What people read: the terminal tables, HTML pages with PNG charts, Markdown/LaTeX summaries
//! and model comparisons, all rendered from run directories (`crate::run`).

pub mod charts;
pub mod compare;
pub mod html;
pub mod megaface;
pub mod summary;
pub mod terminal;
