//! Which profile type a fresh Explore page opens on: `GET /api/v1/profile-types` lists it
//! first. It is the first type, in order of preference — CPU time, then in-use memory,
//! then the others as listed — whose newest profile in the last hour has samples; so a
//! busy server opens on CPU and an idle one (whose CPU profiles are zero rows) on its
//! heap. When none has, CPU (or the list as it is) comes first.

use shared::{labels::Selector, query::ProfileType};

use super::{QueryError, Selection, profile_points};
use crate::store::Store;

/// How far back the newest profile is looked for.
const LOOK_BACK_MS: i64 = 3_600_000;

/// CPU time first, then in-use memory, then everything else.
fn preference(t: &ProfileType) -> u8 {
    if t.is_cpu_time() {
        0
    } else if t.sample_type == "inuse_space" {
        1
    } else {
        2
    }
}

/// `types` with the suggested default moved to the front (the rest keep their order).
pub async fn suggested_first(
    store: &Store,
    mut types: Vec<ProfileType>,
    now_ms: i64,
) -> Result<Vec<ProfileType>, QueryError> {
    let mut order: Vec<usize> = (0..types.len()).collect();
    order.sort_by_key(|&i| preference(&types[i]));
    let mut chosen = order.first().copied();
    for &i in &order {
        if newest_has_samples(store, &types[i], now_ms).await? {
            chosen = Some(i);
            break;
        }
    }
    if let Some(i) = chosen {
        let first = types.remove(i);
        types.insert(0, first);
    }
    Ok(types)
}

/// Whether the newest profile of the type (all its series at the newest timestamp) in
/// the last hour sums to anything but zero.
async fn newest_has_samples(
    store: &Store,
    profile_type: &ProfileType,
    now_ms: i64,
) -> Result<bool, QueryError> {
    let sel = Selection {
        profile_type: profile_type.clone(),
        selector: Selector::default(),
        start: now_ms - LOOK_BACK_MS,
        end: now_ms,
    };
    let points = profile_points(store, &sel).await?;
    let Some(newest) = points.iter().map(|p| p.timestamp).max() else {
        return Ok(false);
    };
    Ok(points
        .iter()
        .filter(|p| p.timestamp == newest)
        .any(|p| p.total != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(id: &str) -> ProfileType {
        id.parse().unwrap()
    }

    #[test]
    fn cpu_time_is_preferred_then_in_use_memory() {
        let cpu = ty("process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta");
        let samples = ty("process_cpu:samples:count:cpu:nanoseconds:delta");
        let heap = ty("memory:inuse_space:bytes:space:bytes");
        let goroutines = ty("goroutine:goroutine:count:goroutine:count");
        assert_eq!(preference(&cpu), 0);
        assert_eq!(preference(&heap), 1);
        assert_eq!(preference(&samples), 2);
        assert_eq!(preference(&goroutines), 2);
    }
}
