//! `tongtian contract ...`: deploy, call, query and list events of WASM
//! and EVM contracts. WASM arguments are JSON values (see
//! `tongtian_vm_wasm::json`); EVM arguments are encoded by the `--abi`.

use crate::commands::{load_key, parse_address, print};
use crate::{CallSpec, ContractCommand, SignerArgs};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;
use tongtian_client::Client;
use tongtian_crypto::SuiteId;
use tongtian_types::{Action, Address, Receipt, Transaction, TxStatus, VmKind, H256};
use tongtian_vm_evm::abi as evm_abi;

/// Run a contract command.
pub async fn run(client: &Client, cmd: ContractCommand, json: bool) -> Result<()> {
    match cmd {
        ContractCommand::Deploy {
            signer,
            wasm,
            evm,
            abi,
            args,
            value,
        } => {
            let args = parse_json(&args)?;
            let (vm, code, ctor) = match (wasm, evm) {
                (Some(w), None) => {
                    let code =
                        std::fs::read(&w).with_context(|| format!("reading {}", w.display()))?;
                    let ctor = tongtian_vm_wasm::json::encode_input("deploy", &args)?;
                    (VmKind::Wasm, code, ctor)
                }
                (None, Some(e)) => {
                    let code = read_evm_code(&e)?;
                    let ctor = match abi {
                        Some(a) => evm_abi::encode_constructor(&read_abi(&a)?, &args)?,
                        None if args.as_array().is_none_or(|a| a.is_empty()) => Vec::new(),
                        None => bail!("constructor arguments of an EVM contract need --abi"),
                    };
                    (VmKind::Evm, code, ctor)
                }
                _ => bail!("give exactly one of --wasm and --evm"),
            };
            let action = Action::Deploy {
                vm,
                code,
                args: ctor,
                value,
            };
            let (hash, receipt) = send(client, &signer, action, true).await?;
            let receipt = receipt.context("no receipt")?;
            fail_unless_success(&hash, &receipt)?;
            let address = receipt
                .contract_address
                .context("receipt has no contract address")?;
            let out = serde_json::json!({
                "address": address,
                "tx_hash": hash,
                "height": receipt.height,
                "gas_used": receipt.gas_used,
                "vm": vm,
            });
            print(json, &out, || address.to_string())
        }
        ContractCommand::Call {
            signer,
            spec,
            value,
            wait,
        } => {
            let (to, input, abi) = encode_call(&spec)?;
            let action = Action::Call { to, input, value };
            let (hash, receipt) = send(client, &signer, action, wait).await?;
            let Some(receipt) = receipt else {
                return print(json, &serde_json::json!({ "hash": hash }), || {
                    hash.to_string()
                });
            };
            let output = if receipt.is_success() {
                decode_output(&spec, abi.as_ref(), &receipt.output)
                    .unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::Value::Null
            };
            let out = serde_json::json!({ "receipt": receipt, "output": output });
            print(json, &out, || {
                format!(
                    "hash     {hash}\nstatus   {}\nheight   {}\ngas used {}\noutput   {}\nevents   {}",
                    status_text(&receipt.status),
                    receipt.height,
                    receipt.gas_used,
                    output,
                    receipt.events.len()
                )
            })?;
            fail_unless_success(&hash, &receipt)
        }
        ContractCommand::Query { spec, from } => {
            let (to, input, abi) = encode_call(&spec)?;
            let mut call = serde_json::json!({
                "to": to.to_string(),
                "data": format!("0x{}", hex::encode(&input)),
            });
            if let Some(f) = from {
                call["from"] = serde_json::Value::String(parse_address(&f)?.to_string());
            }
            let out = client
                .eth("eth_call", serde_json::json!([call, "latest"]))
                .await
                .map_err(|e| anyhow::anyhow!("query failed: {e}"))?;
            let hex_out = out.as_str().context("eth_call answered a non-string")?;
            let bytes = hex::decode(hex_out.trim_start_matches("0x"))?;
            let value = decode_output(&spec, abi.as_ref(), &bytes)?;
            print(json, &value, || match &value {
                serde_json::Value::String(s) => s.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            })
        }
        ContractCommand::Events { address, from, to } => {
            let a = parse_address(&address)?;
            let events = client.events(Some(&a), from, to).await?;
            print(json, &events, || {
                events
                    .iter()
                    .map(|e| {
                        let attrs: Vec<String> = e
                            .event
                            .attributes
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        format!(
                            "{:>8}  {}  {}  {}",
                            e.height,
                            e.tx_hash,
                            e.event.name,
                            attrs.join(" ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

fn parse_json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).with_context(|| format!("--args is not JSON: {s}"))
}

fn read_abi(path: &Path) -> Result<tongtian_vm_evm::abi::JsonAbi> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(evm_abi::parse_abi(&text)?)
}

/// solc's `.bin` is hex; accept raw bytecode too.
fn read_evm_code(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&raw);
    let t = text.trim().trim_start_matches("0x");
    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return hex::decode(t).context("odd-length hex in the EVM code file");
    }
    Ok(raw)
}

fn encode_call(
    spec: &CallSpec,
) -> Result<(Address, Vec<u8>, Option<tongtian_vm_evm::abi::JsonAbi>)> {
    let to = parse_address(&spec.address)?;
    let args = parse_json(&spec.args)?;
    Ok(match &spec.abi {
        Some(p) => {
            let abi = read_abi(p)?;
            let input = evm_abi::encode_call(&abi, &spec.method, &args)?;
            (to, input, Some(abi))
        }
        None => (
            to,
            tongtian_vm_wasm::json::encode_input(&spec.method, &args)?,
            None,
        ),
    })
}

fn decode_output(
    spec: &CallSpec,
    abi: Option<&tongtian_vm_evm::abi::JsonAbi>,
    out: &[u8],
) -> Result<serde_json::Value> {
    match abi {
        Some(abi) => {
            let arity = parse_json(&spec.args)?.as_array().map_or(0, |a| a.len());
            let f = evm_abi::function(abi, &spec.method, arity)?;
            Ok(evm_abi::decode_output(f, out)?)
        }
        None => tongtian_vm_wasm::json::output_to_json(out).map_err(anyhow::Error::msg),
    }
}

fn status_text(s: &TxStatus) -> String {
    match s {
        TxStatus::Success => "success".into(),
        TxStatus::Failed { code, message } => format!("failed ({code}: {message})"),
    }
}

fn fail_unless_success(hash: &H256, r: &Receipt) -> Result<()> {
    if !r.is_success() {
        bail!("transaction {hash} failed: {}", status_text(&r.status));
    }
    Ok(())
}

/// Sign `action` with the signer's key for the node's chain, at `nonce` or
/// the account's next one (counting pending transactions).
pub async fn sign(
    client: &Client,
    signer: &SignerArgs,
    action: Action,
    nonce: Option<u64>,
) -> Result<tongtian_types::SignedTransaction> {
    let key = load_key(&signer.key, signer.password.as_deref())?;
    let status = client.status().await?;
    let chain_suite: SuiteId = status.suite.parse()?;
    if chain_suite != key.suite() {
        bail!(
            "the key is a {} key but the chain uses the {} suite",
            key.suite(),
            chain_suite
        );
    }
    let from = Address::from_public_key(key.suite(), key.public_key());
    let nonce = match nonce {
        Some(n) => n,
        None => client.account(&from).await?.pending_nonce,
    };
    Ok(Transaction {
        chain_id: status.chain_id,
        nonce,
        gas_limit: signer.gas_limit,
        gas_price: signer.gas_price,
        action,
    }
    .sign(&key))
}

/// Sign and submit `action`; with `wait`, also wait for its receipt.
pub async fn send(
    client: &Client,
    signer: &SignerArgs,
    action: Action,
    wait: bool,
) -> Result<(H256, Option<Receipt>)> {
    let tx = sign(client, signer, action, None).await?;
    let hash = client.submit(&tx).await?;
    if !wait {
        return Ok((hash, None));
    }
    let receipt = client.wait_receipt(&hash, Duration::from_secs(60)).await?;
    Ok((hash, Some(receipt)))
}
