//! `tongtian dev --agents N`: N party agents beside the dev node, each
//! with a sample dataset registered as an asset and granted to the other
//! dev accounts for PSI, so a newcomer runs a job with one more command.

use crate::util;
use anyhow::{Context, Result};
use rand::RngCore;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tongtian_agent::{Agent, AgentConfig};
use tongtian_client::Client;
use tongtian_crypto::Keypair;
use tongtian_data::data::DataMsg;
use tongtian_data::rows::{self, Table};
use tongtian_privacy::SessionConfig;
use tongtian_types::{Action, Address, Transaction};

/// Where agent `i` takes sessions: the API's port + 100 + i.
pub fn agent_addr(api: SocketAddr, i: usize) -> SocketAddr {
    SocketAddr::new(api.ip(), api.port() + 100 + i as u16)
}

/// Agent `i`'s sample: 1,000 customers `cust-{500 i} ..`, so neighbours
/// share 500.
fn write_sample(path: &Path, i: usize) -> Result<()> {
    let mut text = String::from("id,region,spend\n");
    for k in i * 500..i * 500 + 1_000 {
        text.push_str(&format!(
            "cust-{k:05},{},{}\n",
            ["north", "south", "east", "west"][k % 4],
            (k * 37) % 1_000
        ));
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Sign `action` with `key`, submit it and wait for a successful receipt.
pub(crate) async fn submit(
    client: &Client,
    key: &Keypair,
    action: Action,
) -> Result<tongtian_types::Receipt> {
    let status = client.status().await?;
    let from = Address::from_public_key(key.suite(), key.public_key());
    let tx = Transaction {
        chain_id: status.chain_id,
        nonce: client.account(&from).await?.pending_nonce,
        gas_limit: 1_000_000,
        gas_price: 1,
        action,
    }
    .sign(key);
    let hash = client.submit(&tx).await?;
    let r = client.wait_receipt(&hash, Duration::from_secs(30)).await?;
    if !r.is_success() {
        anyhow::bail!("refused: {}", util::status_text(&r.status));
    }
    Ok(r)
}

/// Start the agents once the dev node at `api` answers; print what they
/// hold and the command that runs a job over the first two.
pub async fn start(
    api: SocketAddr,
    data_dir: PathBuf,
    dev_keys: Vec<PathBuf>,
    n: usize,
    json_out: bool,
) -> Result<Vec<Agent>> {
    let node = format!("http://{api}");
    let client = Client::new(&node);
    for _ in 0..200 {
        if client.status().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let suite = client.status().await?.suite.parse()?;
    let keys: Vec<Keypair> = dev_keys
        .iter()
        .map(|p| util::load_key(p, None))
        .collect::<Result<_>>()?;
    let addresses: Vec<Address> = keys
        .iter()
        .map(|k| Address::from_public_key(k.suite(), k.public_key()))
        .collect();
    let mut agents = Vec::new();
    let mut report = Vec::new();
    for i in 0..n.min(keys.len()) {
        let home = data_dir.join("agents").join(format!("agent-{i}"));
        let file = home.join("data").join(format!("sample-{i}.csv"));
        std::fs::create_dir_all(home.join("data"))?;
        if !file.exists() {
            write_sample(&file, i)?;
            let mut salt = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut salt);
            std::fs::write(rows::salt_path(&file), hex::encode(salt))?;
        }
        let table = Table::read(&file).map_err(crate::data::rows_error)?;
        let salt = rows::read_salt(&file).map_err(crate::data::rows_error)?;
        let c = table.commit(suite, &salt);
        let listen = agent_addr(api, i);
        let key = keys[i].clone();
        let agent = Agent::start(
            AgentConfig {
                home: home.clone(),
                node: node.clone(),
                chain: None,
                listen,
                session: SessionConfig {
                    timeout: Duration::from_secs(30),
                    ..SessionConfig::default()
                },
                poll: Duration::from_millis(300),
            },
            key.clone(),
        )
        .await
        .with_context(|| format!("starting agent {i} on {listen}"))?;
        // Its asset, registered and granted once.
        let assets = client.module_query("data", "assets").await?;
        let existing = assets.as_array().into_iter().flatten().find(|a| {
            a["commitment"].as_str() == Some(&c.root.to_string())
                && a["owner"].as_str() == Some(&addresses[i].to_string())
        });
        let asset = match existing.and_then(|a| a["id"].as_u64()) {
            Some(id) => id,
            None => {
                let r = submit(
                    &client,
                    &key,
                    DataMsg::Register {
                        name: format!("sample-{i}"),
                        schema: c.schema.clone(),
                        rows: c.rows,
                        commitment: c.root,
                        agent: listen.to_string(),
                        agent_key: key.public_key().to_vec(),
                        price: 10,
                    }
                    .action(),
                )
                .await?;
                let id = u64::from_le_bytes(r.output[..8].try_into()?);
                for (j, to) in addresses.iter().enumerate() {
                    if j != i {
                        submit(
                            &client,
                            &key,
                            DataMsg::Grant {
                                asset: id,
                                to: *to,
                                protocols: vec!["psi-ecdh".into(), "psi-ot".into()],
                                columns: vec![],
                                until: 0,
                                uses: 0,
                            }
                            .action(),
                        )
                        .await?;
                    }
                }
                id
            }
        };
        report.push(json!({
            "agent": addresses[i].to_string(),
            "listen": listen.to_string(),
            "home": home.display().to_string(),
            "asset": asset,
            "file": file.display().to_string(),
        }));
        agents.push(agent);
    }
    if json_out {
        println!("{}", json!({ "agents": report }));
    } else {
        println!("  party agents:");
        for a in &report {
            println!(
                "    {}  on {}  asset {} ({})",
                a["agent"].as_str().unwrap_or(""),
                a["listen"].as_str().unwrap_or(""),
                a["asset"],
                a["file"].as_str().unwrap_or("")
            );
        }
        if report.len() >= 2 && dev_keys.len() > report.len() {
            let payer = &dev_keys[report.len()];
            println!(
                "  run a PSI job:\n    tongtian compute psi --assets {},{} --key-column id --pay 20 --key {} --wait",
                report[0]["asset"], report[1]["asset"],
                payer.display()
            );
        }
    }
    Ok(agents)
}
