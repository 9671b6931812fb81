//! `tongtian data ...`: data assets on chain, their files kept here.
//!
//! `register` reads the CSV locally and puts on chain only its schema, row
//! count and a salted Merkle root: leaf `i` is the chain suite's hash of a
//! domain, the salt, `i` and the row's fields (each length-prefixed), and
//! the root is the chain's list Merkle root over the leaves. The salt (32
//! random bytes) is written beside the file as `FILE.salt` and never
//! leaves it, so the root reveals nothing about the rows.

use crate::util::{self, parse_address, print, usage, Ctx};
use crate::DataCommand;
use anyhow::{Context, Result};
use rand::RngCore;
use std::path::Path;
use tongtian_data::data::{Column, DataMsg};
use tongtian_types::H256;

/// What a CSV file commits to.
pub struct Committed {
    /// Its columns, with types inferred (`int`, `float`, `string`).
    pub schema: Vec<Column>,
    /// Its row count.
    pub rows: u64,
    /// The salted Merkle root.
    pub root: H256,
}

/// The salted Merkle root of `file` under `salt`, with the chain's suite.
pub fn commit(file: &Path, salt: &[u8; 32], suite: tongtian_crypto::SuiteId) -> Result<Committed> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let header: Vec<String> = r.headers()?.iter().map(|h| h.trim().to_string()).collect();
    let s = tongtian_crypto::suite(suite);
    let mut kinds = vec![(true, true); header.len()];
    let mut leaves = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", file.display(), i + 1))?;
        if rec.len() != header.len() {
            return Err(usage(
                "bad_csv",
                format!(
                    "{}: row {} has {} fields, the header {}",
                    file.display(),
                    i + 1,
                    rec.len(),
                    header.len()
                ),
            ));
        }
        let mut leaf = b"tongtian/data-row/v1".to_vec();
        leaf.extend_from_slice(salt);
        leaf.extend_from_slice(&(i as u64).to_be_bytes());
        for (j, field) in rec.iter().enumerate() {
            leaf.extend_from_slice(&(field.len() as u64).to_be_bytes());
            leaf.extend_from_slice(field.as_bytes());
            let f = field.trim();
            kinds[j].0 &= f.parse::<i64>().is_ok();
            kinds[j].1 &= f.parse::<f64>().is_ok();
        }
        leaves.push(H256(s.hash(&leaf)));
    }
    let schema = header
        .iter()
        .zip(&kinds)
        .map(|(name, (int, float))| Column {
            name: name.clone(),
            kind: if leaves.is_empty() {
                "string"
            } else if *int {
                "int"
            } else if *float {
                "float"
            } else {
                "string"
            }
            .into(),
        })
        .collect();
    Ok(Committed {
        schema,
        rows: leaves.len() as u64,
        root: tongtian_types::merkle_root(s, &leaves),
    })
}

async fn send(
    ctx: &Ctx,
    signer: &crate::SignerArgs,
    msg: DataMsg,
) -> Result<tongtian_types::Receipt> {
    let tx = util::sign(&ctx.client, signer, msg.action(), None).await?;
    let hash = ctx.client.submit(&tx).await?;
    let r = util::wait_receipt(&ctx.client, &hash, ctx.wait).await?;
    if !r.is_success() {
        return Err(util::Reported(format!("refused: {}", util::status_text(&r.status))).into());
    }
    Ok(r)
}

/// Run a `data` command.
pub async fn run(ctx: &Ctx, cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Register {
            name,
            file,
            key_column,
            price,
            agent,
            signer,
        } => {
            let suite: tongtian_crypto::SuiteId = ctx.client.status().await?.suite.parse()?;
            let mut salt = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut salt);
            let c = commit(&file, &salt, suite)?;
            if !c.schema.iter().any(|col| col.name == key_column) {
                return Err(usage(
                    "unknown_column",
                    format!("{} has no column {key_column:?}", file.display()),
                ));
            }
            let key = util::load_key(&signer.key, signer.password.as_deref())?;
            let r = send(
                ctx,
                &signer,
                DataMsg::Register {
                    name,
                    schema: c.schema,
                    rows: c.rows,
                    commitment: c.root,
                    agent,
                    agent_key: key.public_key().to_vec(),
                    price,
                },
            )
            .await?;
            let id = u64::from_le_bytes(
                r.output[..8]
                    .try_into()
                    .context("the chain answered no asset id")?,
            );
            let salt_path = file.with_extension(format!(
                "{}salt",
                file.extension()
                    .map_or(String::new(), |e| format!("{}.", e.to_string_lossy()))
            ));
            std::fs::write(&salt_path, hex::encode(salt))
                .with_context(|| format!("cannot write {}", salt_path.display()))?;
            let out = serde_json::json!({ "asset": id, "commitment": c.root.to_string(), "rows": c.rows, "salt_file": salt_path });
            print(ctx.json, &out, || {
                format!(
                    "asset {id}: {} rows, commitment {} (salt in {})",
                    c.rows,
                    c.root,
                    salt_path.display()
                )
            })
        }
        DataCommand::List => {
            let v = ctx.client.module_query("data", "assets").await?;
            print(ctx.json, &v, || {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        format!(
                            "{}  {}  {}  rows {}  price {}  {}",
                            a["id"],
                            a["name"].as_str().unwrap_or(""),
                            a["owner"].as_str().unwrap_or(""),
                            a["rows"],
                            a["price"].as_str().unwrap_or(""),
                            a["status"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        DataCommand::Show { id } => {
            let v = ctx
                .client
                .module_query("data", &format!("assets/{id}"))
                .await?;
            print(ctx.json, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            })
        }
        DataCommand::History { id } => {
            let v = ctx
                .client
                .module_query("data", &format!("assets/{id}/history"))
                .await?;
            print(ctx.json, &v, || {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "block {}  {}  by {}  {}",
                            e["height"],
                            e["action"].as_str().unwrap_or(""),
                            e["by"].as_str().unwrap_or(""),
                            e["detail"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        DataCommand::Grant {
            id,
            to,
            protocols,
            columns,
            until,
            uses,
            signer,
        } => {
            let r = send(
                ctx,
                &signer,
                DataMsg::Grant {
                    asset: id,
                    to: parse_address(&to)?,
                    protocols,
                    columns,
                    until,
                    uses,
                },
            )
            .await?;
            let g = u64::from_le_bytes(
                r.output[..8]
                    .try_into()
                    .context("the chain answered no grant id")?,
            );
            print(
                ctx.json,
                &serde_json::json!({ "asset": id, "grant": g }),
                || format!("grant {g} on asset {id}"),
            )
        }
        DataCommand::Revoke { id, grant, signer } => {
            send(ctx, &signer, DataMsg::Revoke { asset: id, grant }).await?;
            print(
                ctx.json,
                &serde_json::json!({ "asset": id, "grant": grant, "revoked": true }),
                || format!("grant {grant} on asset {id} revoked"),
            )
        }
    }
}
