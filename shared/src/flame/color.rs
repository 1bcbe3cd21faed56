//! Colours: a stable warm palette by package, and red/green for differences.

use super::hash::{fnv1a, mix64};
use super::model::Frame;

/// An RGB colour.
type Rgb = (u8, u8, u8);

/// The colour of `frame`: a stable hash (FNV-1a) of its [`Frame::package`] into a warm,
/// flame-like palette (reds, oranges and yellows, like inferno's "hot"), so one package
/// keeps its colour across views, reloads and platforms. `dark` darkens it for a dark
/// theme.
pub fn color_for(frame: &Frame, dark: bool) -> Rgb {
    let h = mix64(fnv1a(frame.package().as_bytes()));
    let unit = |shift: u32| ((h >> shift) & 0xff) as f64 / 255.0;
    let (r, g, b) = (205.0 + 50.0 * unit(0), 230.0 * unit(8), 55.0 * unit(16));
    let scale = if dark { 0.78 } else { 1.0 };
    (channel(r * scale), channel(g * scale), channel(b * scale))
}

/// The colour for a relative change (see [`crate::flame::diff_ratio`]): grey near 0,
/// increasingly red for growth and green for shrinkage, saturating at ±100%. NaN is grey.
pub fn diff_color(ratio: f64) -> Rgb {
    const NEUTRAL: Rgb = (190, 190, 190);
    const RED: Rgb = (225, 45, 45);
    const GREEN: Rgb = (40, 170, 70);
    if ratio.is_nan() {
        return NEUTRAL;
    }
    let target = if ratio > 0.0 { RED } else { GREEN };
    let t = ratio.abs().min(1.0);
    let lerp = |from: u8, to: u8| channel(f64::from(from) + (f64::from(to) - f64::from(from)) * t);
    (
        lerp(NEUTRAL.0, target.0),
        lerp(NEUTRAL.1, target.1),
        lerp(NEUTRAL.2, target.2),
    )
}

/// Rounds and clamps a colour channel.
fn channel(value: f64) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_package_same_color() {
        let a = color_for(&Frame::named("runtime.mallocgc"), false);
        assert_eq!(a, color_for(&Frame::named("runtime.gcBgMarkWorker"), false));
        assert_ne!(a, color_for(&Frame::named("net/http.(*conn).serve"), false));
    }

    #[test]
    fn colors_are_stable_and_warm() {
        // Pinned: must not change between releases or platforms.
        assert_eq!(
            color_for(&Frame::named("main.main"), false),
            color_for(&Frame::named("main.f"), false)
        );
        let pinned = color_for(&Frame::named("runtime.mallocgc"), false);
        assert_eq!(pinned, PINNED_RUNTIME);
        for name in ["a.f", "b.f", "c.f", "std::x", "java.util.Map.get", "malloc"] {
            let (r, g, b) = color_for(&Frame::named(name), false);
            assert!(r >= 205 && g <= 230 && b <= 55, "{name}: {r},{g},{b}");
            let (dr, dg, db) = color_for(&Frame::named(name), true);
            assert!(dr < r && dg <= g && db <= b);
        }
    }

    const PINNED_RUNTIME: Rgb = (243, 209, 12);

    #[test]
    fn diff_colors() {
        assert_eq!(diff_color(0.0), (190, 190, 190));
        assert_eq!(diff_color(f64::NAN), (190, 190, 190));
        assert_eq!(diff_color(1.0), (225, 45, 45));
        assert_eq!(diff_color(5.0), (225, 45, 45));
        assert_eq!(diff_color(f64::INFINITY), (225, 45, 45));
        assert_eq!(diff_color(-1.0), (40, 170, 70));
        assert_eq!(diff_color(f64::NEG_INFINITY), (40, 170, 70));
        let (r, g, b) = diff_color(0.5);
        assert!(r > g && g == b && r > 190);
        let (r, _, b) = diff_color(-0.02);
        assert!(r < 190 && r > 180 && b < 190);
    }
}
