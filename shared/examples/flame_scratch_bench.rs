use shared::flame::*;
use std::time::Instant;
fn main() {
    let mut rng = 0x1234_5678_u64;
    let mut next = move |n: u64| { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng % n };
    let frames: Vec<Frame> = (0..5000).map(|i| Frame { function: format!("pkg{}.func{}", i % 50, i), file: "x.go".into(), ..Frame::default() }).collect();
    let mut stacks = Vec::new();
    let mut total_frames = 0;
    for _ in 0..50_000 {
        let t = next(4000);
        let depth = 18 + next(4) as usize;
        let mut f: Vec<u32> = (0..depth).map(|d| {
            let group = if d >= depth - 2 { t * 100 + next(8) } else { t >> 12usize.saturating_sub(d) };
            ((d as u64 * 7919 + group * 31) % 5000) as u32
        }).collect();
        f.reverse();
        total_frames += f.len();
        stacks.push(Stack { frames: f, value: 1 + next(100) as i64, baseline: next(50) as i64 });
    }
    let set = StackSet { frames, stacks };
    for _ in 0..3 {
        let t = Instant::now();
        let tree = FlameTree::build(&set, TreeOptions::default());
        let build = t.elapsed();
        let t = Instant::now();
        let inv = FlameTree::build(&set, TreeOptions { invert: true });
        let binv = t.elapsed();
        let t = Instant::now();
        let filt = FlameTree::build_filtered(&set, &StackFilter { hide_frames: vec!["func1".into()], drop_containing: vec!["FUNC77".into()], ..Default::default() }, TreeOptions::default());
        let bf = t.elapsed();
        let t = Instant::now();
        let (trimmed, info) = tree.trim(10_000);
        let tt = t.elapsed();
        let t = Instant::now();
        let rects = layout(&tree, None, 1920.0, 1.0);
        let tl = t.elapsed();
        let t = Instant::now();
        let s = search(&tree, "func12");
        let ts = t.elapsed();
        let t = Instant::now();
        let top = top(&set);
        let ttop = t.elapsed();
        println!("frames {total_frames} nodes {} inv {} filt {}: build {build:?} inv {binv:?} filtered {bf:?} trim {tt:?} ({} {:?}) layout {tl:?} ({} rects) search {ts:?} ({}) top {ttop:?} ({})",
            tree.len(), inv.len(), filt.len(), trimmed.len(), info, rects.len(), s.matched_total, top.len());
    }
}
