//! `tongtian data ...`: data assets on chain, their files kept here.
//!
//! `register` reads the CSV locally and puts on chain only its schema, row
//! count and the salted Merkle root of [`tongtian_data::rows`]. The salt
//! (32 random bytes) is written beside the file as `FILE.salt` and never
//! leaves it, so the root reveals nothing about the rows; `prove` opens
//! one row against the root recorded on chain.

use crate::util::{self, parse_address, print, usage, Ctx};
use crate::DataCommand;
use anyhow::{Context, Result};
use rand::RngCore;
use tongtian_data::data::DataMsg;
use tongtian_data::rows::{self, Table};

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

/// The CSV file under `dir` (at most `depth` levels down, with its salt
/// beside it) whose salted root is `root`.
fn find_committed(
    dir: &std::path::Path,
    suite: tongtian_crypto::SuiteId,
    root: &tongtian_types::H256,
    depth: usize,
) -> Option<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            dirs.push(p);
        } else if p.extension().is_some_and(|x| x == "csv") && rows::salt_path(&p).exists() {
            let committed = Table::read(&p)
                .ok()
                .zip(rows::read_salt(&p).ok())
                .map(|(t, salt)| t.commit(suite, &salt).root);
            if committed.as_ref() == Some(root) {
                return Some(p);
            }
        }
    }
    if depth == 0 {
        return None;
    }
    dirs.into_iter()
        .find_map(|d| find_committed(&d, suite, root, depth - 1))
}

/// A file's problem as a usage error with its code.
pub fn rows_error(e: rows::RowsError) -> anyhow::Error {
    usage(e.code(), e.to_string())
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
            let table = Table::read(&file).map_err(rows_error)?;
            let c = table.commit(suite, &salt);
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
            let salt_path = rows::salt_path(&file);
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
        DataCommand::Prove { id, row, file } => {
            let suite: tongtian_crypto::SuiteId = ctx.client.status().await?.suite.parse()?;
            let a = ctx
                .client
                .module_query("data", &format!("assets/{id}"))
                .await?;
            let on_chain = util::parse_hash(a["commitment"].as_str().unwrap_or(""))?;
            let file = match file {
                Some(f) => f,
                None => find_committed(std::path::Path::new("."), suite, &on_chain, 5)
                    .ok_or_else(|| {
                        usage(
                            "asset_not_held",
                            format!(
                                "no CSV file with its salt under this directory commits to asset {id}; name it with --file"
                            ),
                        )
                    })?,
            };
            let table = Table::read(&file).map_err(rows_error)?;
            let salt = rows::read_salt(&file).map_err(rows_error)?;
            let p = rows::prove(&table, suite, &salt, row).map_err(rows_error)?;
            if !p.verify(suite, &on_chain) {
                return Err(usage(
                    "commitment_mismatch",
                    format!(
                        "{} does not hold asset {id}: its root is {}, the chain's {on_chain}",
                        file.display(),
                        p.root
                    ),
                ));
            }
            let mut out = serde_json::to_value(&p)?;
            out["asset"] = id.into();
            out["valid"] = true.into();
            print(ctx.json, &out, || {
                format!(
                    "row {row} of asset {id} ({}) is in commitment {on_chain}: {} steps",
                    p.fields.join(","),
                    p.path.len()
                )
            })
        }
    }
}
