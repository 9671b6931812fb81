//! The protocols an agent runs, behind one call: from a job, this
//! party's file and its sessions to role 0's output file.

use crate::{AgentError, JobParams};
use std::collections::BTreeMap;
use tongtian_data::data::Asset;
use tongtian_data::job::Job;
use tongtian_data::rows::Table;
use tongtian_privacy::fl::{Federated, FlInput, FlParams};
use tongtian_privacy::lr::{LogisticRegression, LrInput, LrParams, Sigmoid};
use tongtian_privacy::protocol::PsiParams;
use tongtian_privacy::stats::{Stats, StatsInput, StatsParams};
use tongtian_privacy::{Peers, PrivacyProtocol, PsiInput, PsiOutput};

/// The protocols this agent runs.
pub const SUPPORTED: [&str; 5] = ["psi-ecdh", "psi-ot", "stats", "lr-vertical", "fl"];

/// Role 0's output: the file it keeps in `results/` and serves to the
/// job's output account, and a summary for its log and record.
pub struct Output {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its extension (`csv`, `json`).
    pub ext: &'static str,
    /// PSI: the intersection's size.
    pub intersection_size: Option<usize>,
    /// A multi-round job's rounds: number, participants, model commitment.
    pub rounds: Vec<(u32, Vec<u32>, [u8; 32])>,
}

/// How many parties a job of `protocol` over `assets` assets has, or why
/// it cannot run.
pub fn parties(protocol: &str, assets: usize) -> Result<usize, AgentError> {
    let want = match protocol {
        "psi-ecdh" | "psi-ot" => 2,
        "stats" | "lr-vertical" => 3,
        "fl" if assets >= 3 => return Ok(assets),
        "fl" => 3,
        p => {
            return Err(AgentError::new(
                "unsupported_protocol",
                format!("this agent runs {SUPPORTED:?}, not {p}"),
            ))
        }
    };
    if assets != want {
        return Err(AgentError::new(
            "bad_job",
            format!("{protocol} takes {want} assets, not {assets}"),
        ));
    }
    Ok(want)
}

/// Whether the protocol's sessions form a star around role 0 (every
/// other role talks to role 0 only) rather than every pair.
pub fn star(protocol: &str) -> bool {
    protocol == "fl"
}

fn rows(e: tongtian_data::rows::RowsError) -> AgentError {
    AgentError::new(e.code(), e.to_string())
}

/// Check, before accepting, that this party can run its role of `j` on
/// `table`.
pub fn check(j: &Job, params: &JobParams, table: &Table) -> Result<(), AgentError> {
    table.column(&params.key_column).map_err(rows)?;
    if matches!(j.protocol.as_str(), "stats" | "lr-vertical" | "fl") {
        for c in &j.columns {
            if let Ok(i) = table.column(c) {
                if *c != params.key_column {
                    numbers(table, i, c)?;
                }
            }
        }
    }
    Ok(())
}

fn numbers(table: &Table, i: usize, name: &str) -> Result<Vec<f64>, AgentError> {
    table
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            row[i].trim().parse::<f64>().map_err(|_| {
                AgentError::new(
                    "bad_value",
                    format!("row {} of column {name} is not a number", r + 1),
                )
            })
        })
        .collect()
}

/// Run role `role` of job `j` (tagged `tag`) over `peers`: role 0's
/// output, and the bytes this party sent.
pub async fn run(
    j: &Job,
    assets: &[Asset],
    role: usize,
    peers: &mut Peers,
    params: &JobParams,
    table: &Table,
    tag: [u8; 32],
) -> Result<(Option<Output>, u64), AgentError> {
    let keys = table.values(&params.key_column).map_err(rows)?;
    match j.protocol.as_str() {
        "psi-ecdh" | "psi-ot" => {
            let p = tongtian_privacy::psi_protocol(&j.protocol)
                .ok_or_else(|| AgentError::new("unsupported_protocol", j.protocol.clone()))?;
            let psi = PsiParams {
                job: tag,
                cardinality: params.cardinality,
                max_set: tongtian_data::rows::MAX_ROWS as usize,
            };
            let ran = p.run(role, peers, &psi, PsiInput { keys }).await?;
            let out = match ran.output {
                PsiOutput::Intersection(both) => {
                    let mut out = format!("{}\n", params.key_column);
                    for k in &both {
                        out.push_str(&csv_field(k));
                        out.push('\n');
                    }
                    Some(Output {
                        bytes: out.into_bytes(),
                        ext: "csv",
                        intersection_size: Some(both.len()),
                        rounds: vec![],
                    })
                }
                PsiOutput::Size(n) => Some(Output {
                    bytes: format!("intersection_size\n{n}\n").into_bytes(),
                    ext: "csv",
                    intersection_size: Some(n),
                    rounds: vec![],
                }),
                PsiOutput::Nothing => None,
            };
            Ok((out, ran.bytes_sent))
        }
        "stats" => {
            // Each column belongs to the first asset whose schema has it.
            let mut columns = Vec::new();
            for c in j.columns.iter().filter(|c| **c != params.key_column) {
                let owner = assets
                    .iter()
                    .position(|a| a.schema.iter().any(|s| &s.name == c))
                    .ok_or_else(|| AgentError::new("unknown_column", c.clone()))?;
                columns.push((c.clone(), owner));
            }
            let want = |op: &str| params.ops.is_empty() || params.ops.iter().any(|o| o == op);
            let mut corr = Vec::new();
            if want("corr") {
                for (i, (a, _)) in columns.iter().enumerate() {
                    for (b, _) in &columns[i + 1..] {
                        corr.push((a.clone(), b.clone()));
                    }
                }
            }
            let mine: BTreeMap<String, Vec<f64>> = columns
                .iter()
                .filter(|(_, owner)| *owner == role)
                .map(|(c, _)| {
                    Ok((
                        c.clone(),
                        numbers(table, table.column(c).map_err(rows)?, c)?,
                    ))
                })
                .collect::<Result<_, AgentError>>()?;
            let sp = StatsParams {
                job: tag,
                frac: 20,
                columns,
                corr,
                extremes: want("min") || want("max"),
                edges: if want("histogram") {
                    params.bins.clone()
                } else {
                    vec![]
                },
            };
            let ran = Stats
                .run(
                    role,
                    peers,
                    &sp,
                    StatsInput {
                        keys,
                        columns: mine,
                    },
                )
                .await?;
            let out = ran.output.map(|r| {
                let mut v = serde_json::Map::new();
                v.insert("count".into(), r.count.into());
                for (op, m) in [
                    ("sum", &r.sum),
                    ("mean", &r.mean),
                    ("variance", &r.variance),
                    ("corr", &r.corr),
                    ("min", &r.min),
                    ("max", &r.max),
                ] {
                    if want(op) {
                        v.insert(op.into(), serde_json::to_value(m).unwrap_or_default());
                    }
                }
                if !r.histogram.is_empty() {
                    v.insert(
                        "histogram".into(),
                        serde_json::json!({ "edges": params.bins, "counts": r.histogram }),
                    );
                }
                Output {
                    bytes: serde_json::to_vec_pretty(&v).unwrap_or_default(),
                    ext: "json",
                    intersection_size: None,
                    rounds: vec![],
                }
            });
            Ok((out, ran.bytes_sent))
        }
        "lr-vertical" => {
            let label = params
                .label
                .clone()
                .ok_or_else(|| AgentError::new("bad_params", "lr-vertical needs a label"))?;
            if !assets[0].schema.iter().any(|c| c.name == label) {
                return Err(AgentError::new(
                    "bad_params",
                    format!("the label {label} must be in the first asset"),
                ));
            }
            let mut features = Vec::new();
            for c in j
                .columns
                .iter()
                .filter(|c| **c != params.key_column && **c != label)
            {
                let owner = assets
                    .iter()
                    .position(|a| a.schema.iter().any(|s| &s.name == c))
                    .ok_or_else(|| AgentError::new("unknown_column", c.clone()))?;
                features.push((c.clone(), owner));
            }
            let mut mine: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for (c, owner) in &features {
                if *owner == role {
                    mine.insert(
                        c.clone(),
                        numbers(table, table.column(c).map_err(rows)?, c)?,
                    );
                }
            }
            if role == 0 {
                mine.insert(
                    label.clone(),
                    numbers(table, table.column(&label).map_err(rows)?, &label)?,
                );
            }
            let lp = LrParams {
                job: tag,
                frac: 16,
                features,
                label,
                epochs: params.epochs.unwrap_or(10).clamp(1, 10_000),
                learning_rate: params.learning_rate.unwrap_or(0.5),
                batch: 1024,
                holdout: params.holdout.unwrap_or(0.2),
                sigmoid: Sigmoid::Clipped,
            };
            let ran = LogisticRegression
                .run(
                    role,
                    peers,
                    &lp,
                    LrInput {
                        keys,
                        columns: mine,
                    },
                )
                .await?;
            let out = ran.output.map(|m| Output {
                bytes: serde_json::to_vec_pretty(&m).unwrap_or_default(),
                ext: "json",
                intersection_size: None,
                rounds: vec![],
            });
            Ok((out, ran.bytes_sent))
        }
        "fl" => {
            let label = params
                .label
                .clone()
                .ok_or_else(|| AgentError::new("bad_params", "fl needs a label"))?;
            let features: Vec<String> = j
                .columns
                .iter()
                .filter(|c| **c != params.key_column && **c != label)
                .cloned()
                .collect();
            let mut columns = BTreeMap::new();
            for c in features.iter().chain(std::iter::once(&label)) {
                columns.insert(
                    c.clone(),
                    numbers(table, table.column(c).map_err(rows)?, c)?,
                );
            }
            let fp = FlParams {
                job: tag,
                features,
                label,
                rounds: params.rounds.unwrap_or(10).clamp(1, 10_000),
                min_clients: params.min_clients.unwrap_or(0),
                local_epochs: params.epochs.unwrap_or(1).clamp(1, 1_000),
                learning_rate: params.learning_rate.unwrap_or(0.1),
                batch: 16,
                holdout: params.holdout.unwrap_or(0.2),
                hidden: params.hidden.unwrap_or(0),
            };
            let ran = Federated
                .run(role, peers, &fp, FlInput { keys, columns })
                .await?;
            let out = ran.output.map(|m| Output {
                bytes: serde_json::to_vec_pretty(&m).unwrap_or_default(),
                ext: "json",
                intersection_size: None,
                rounds: m
                    .rounds
                    .iter()
                    .map(|r| (r.round, r.participants.clone(), r.model_commitment))
                    .collect(),
            });
            Ok((out, ran.bytes_sent))
        }
        p => Err(AgentError::new("unsupported_protocol", p.to_string())),
    }
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
