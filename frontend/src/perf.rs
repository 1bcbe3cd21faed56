//! `performance.mark`/`measure` around what must stay fast (first draw after data, hover
//! and zoom redraws), so browser tests can read the timings with
//! `performance.getEntriesByName(...)`.

/// Names of the marks and measures.
pub(crate) mod names {
    /// Mark: a flame graph's bytes arrived.
    pub(crate) const DATA: &str = "cinder:data";
    /// Measure: from [`DATA`] to the first frame drawn with it (decode, tree, layout, draw).
    pub(crate) const FIRST_DRAW: &str = "cinder:first-draw";
    /// Mark: the pointer moved onto another node.
    pub(crate) const HOVER: &str = "cinder:hover";
    /// Measure: from [`HOVER`] to the redrawn frame.
    pub(crate) const HOVER_DRAW: &str = "cinder:hover-draw";
    /// Mark: a zoom was asked for.
    pub(crate) const ZOOM: &str = "cinder:zoom";
    /// Measure: from [`ZOOM`] to the redrawn frame (layout included).
    pub(crate) const ZOOM_DRAW: &str = "cinder:zoom-draw";
    /// Measures of the stages of a first draw, each around its own work.
    pub(crate) const DECODE: &str = "cinder:decode";
    /// Building the flame tree.
    pub(crate) const TREE: &str = "cinder:tree";
    /// Laying the tree out.
    pub(crate) const LAYOUT: &str = "cinder:layout";
    /// Drawing the canvas.
    pub(crate) const DRAW: &str = "cinder:draw";
    /// The browser-side top table (after the first frame).
    pub(crate) const TOP: &str = "cinder:top";
}

fn performance() -> Option<web_sys::Performance> {
    web_sys::window()?.performance()
}

/// Sets a mark named `name`.
pub(crate) fn mark(name: &str) {
    if let Some(p) = performance() {
        let _ = p.mark(name);
    }
}

/// Measures from the mark `start` to now as `name`, then clears the mark so the next
/// measure needs a new one.
pub(crate) fn measure(name: &str, start: &str) {
    if let Some(p) = performance()
        && p.get_entries_by_name_with_entry_type(start, "mark")
            .length()
            > 0
    {
        let _ = p.measure_with_start_mark(name, start);
        p.clear_marks_with_mark_name(start);
    }
}

/// Runs `work` and records its duration as the measure `name`.
pub(crate) fn span<T>(name: &str, work: impl FnOnce() -> T) -> T {
    let start = format!("{name}:start");
    mark(&start);
    let out = work();
    measure(name, &start);
    out
}
