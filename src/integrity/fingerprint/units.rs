//! Planning the work (one unit per label and per relationship type, big ones sliced by
//! `id % k`) and running the units in parallel, one tokio task each.

use super::*;

/// Lists labels or relationship types through the `db.*` procedures.
pub(crate) async fn list_names(
    reader: &Reader,
    procedure: &str,
    column: &str,
) -> Result<Vec<String>, IntegrityError> {
    let text = format!("CALL {procedure}() YIELD {column} RETURN {column} AS name");
    let rows = reader.collect(&text, vec![]).await?;
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.get::<String>("name").map_err(|e| shape(&text, e)))
        .collect::<Result<_, _>>()?;
    names.sort();
    names.dedup();
    Ok(names)
}

/// Plans the work units: one per label and per type, big ones split into slices.
pub(super) async fn plan_units(
    reader: &Reader,
    options: &FingerprintOptions,
) -> Result<(Vec<Unit>, u64, u64), IntegrityError> {
    let labels = list_names(reader, "db.labels", "label").await?;
    let types = list_names(reader, "db.relationshipTypes", "relationshipType").await?;
    let mut units = Vec::new();
    let mut rel_total = 0;
    let split = |n: u64| -> u64 {
        if n > options.split_threshold && options.split_threshold > 0 {
            n.div_ceil(options.split_threshold).min(64)
        } else {
            1
        }
    };
    let mut sized: Vec<(u64, Unit)> = Vec::new();
    for label in labels {
        let n = reader
            .count(&format!(
                "MATCH (n:{}) RETURN count(n) AS c",
                quote_name(&label)
            ))
            .await?;
        if n == 0 {
            continue;
        }
        let k = split(n);
        for i in 0..k {
            let slice = (k > 1).then_some((i, k));
            sized.push((
                n / k,
                Unit::Label {
                    label: label.clone(),
                    slice,
                },
            ));
        }
    }
    for t in types {
        let n = reader
            .count(&format!(
                "MATCH ()-[r:{}]->() RETURN count(r) AS c",
                quote_name(&t)
            ))
            .await?;
        if n == 0 {
            continue;
        }
        rel_total += n;
        let k = split(n);
        for i in 0..k {
            let slice = (k > 1).then_some((i, k));
            sized.push((
                n / k,
                Unit::Type {
                    rel_type: t.clone(),
                    slice,
                },
            ));
        }
    }
    // Largest first, so the long units start early and the tail is short.
    sized.sort_by_key(|s| std::cmp::Reverse(s.0));
    units.extend(sized.into_iter().map(|(_, u)| u));
    let node_total = reader.count("MATCH (n) RETURN count(n) AS c").await?;
    Ok((units, node_total, rel_total))
}

/// Aborts a spawned task when dropped (an error elsewhere stops all readers).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs units in parallel (one tokio task per unit, at most `parallelism` at once) and
/// merges their partials.
pub(crate) async fn run_units(
    reader: Arc<Reader>,
    units: Vec<Unit>,
    parallelism: usize,
) -> Result<Partial, IntegrityError> {
    let mut total = Partial::default();
    let mut results = futures::stream::iter(units.into_iter().map(|unit| {
        let reader = reader.clone();
        let handle = tokio::spawn(async move {
            let mut p = Partial::default();
            reader.read_unit(&unit, &mut p, |_, _, _| {}).await?;
            Ok::<_, IntegrityError>(p)
        });
        let mut guard = AbortOnDrop(handle);
        async move {
            match (&mut guard.0).await {
                Ok(r) => r,
                Err(e) => Err(IntegrityError::Input(format!(
                    "a digest reader task failed: {e}"
                ))),
            }
        }
    }))
    .buffer_unordered(parallelism.max(1));
    while let Some(r) = results.next().await {
        total.merge(r?);
    }
    Ok(total)
}
