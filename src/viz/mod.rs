//! Figures: 2-D density panels (PNG), noise-to-data trajectory animations
//! (GIF), line plots of sample quality against cost, and thumbnail grids.
//!
//! Everything is pure Rust: densities are rasterised by [`render_density`]
//! into an RGB buffer, text and axes are drawn by `plotters` with the
//! embedded DejaVu Sans font, and files are encoded with the `image` crate.
//! Every file is written atomically (`<path>.tmp` in the same folder, then a
//! rename), so a reader never sees a half-written figure.
//!
//! Point sets are `(n, 2)` arrays. Rows with a NaN or infinite coordinate are
//! skipped, as are points outside the plotted range; an empty point set gives
//! an empty (white) panel, not an error.

mod canvas;
mod density;
pub mod gif;
pub mod grid;
mod legend;
pub mod lines;
pub mod scatter;
mod sheet;

pub use density::{render_density, Colormap, DensityOptions, Scale, Style};
pub use gif::{trajectory_gif, GifOptions};
pub use lines::{line_plot, LinePlot, Series};
pub use scatter::{scatter_panels, Panel, ScatterOptions};
pub use sheet::{image_thumbnail_grid, thumbnail_grid, ThumbnailOptions};
