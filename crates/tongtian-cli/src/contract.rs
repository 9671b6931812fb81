//! `tongtian contract ...`: deploy, call, query and list events of WASM
//! and EVM contracts. WASM arguments are JSON values (see
//! `tongtian_vm_wasm::json`); EVM arguments are encoded by the `--abi`.

use crate::util::{self, load_key, parse_address, print, sign, usage};
use crate::{CallSpec, ContractCommand, SignerArgs};
use anyhow::{bail, Context, Result};
use std::path::Path;
use tongtian_client::Client;
use tongtian_types::{Action, Address, TxStatus, VmKind};
use tongtian_vm_evm::abi as evm_abi;

/// Run a contract command.
pub async fn run(ctx: &util::Ctx, cmd: ContractCommand) -> Result<()> {
    let (client, json) = (&ctx.client, ctx.json);
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
                    check_wasm(&w, &code)?;
                    let ctor = tongtian_vm_wasm::json::encode_input("deploy", &args)
                        .map_err(|e| usage("bad_args", format!("--args: {e}")))?;
                    (VmKind::Wasm, code, ctor)
                }
                (None, Some(e)) => {
                    let code = read_evm_code(&e)?;
                    let ctor = match abi {
                        Some(a) => {
                            evm_abi::encode_constructor(&read_abi(&a)?, &args).map_err(|e| {
                                usage(
                                    "bad_args",
                                    format!("--args do not fit the constructor: {e}"),
                                )
                            })?
                        }
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
            let tx = sign(client, &signer, action, None).await?;
            let hash = client.submit(&tx).await?;
            let receipt = util::wait_receipt(client, &hash, ctx.wait).await?;
            if !receipt.is_success() {
                let (code, message) = match &receipt.status {
                    TxStatus::Failed { code, message } => (code.as_str(), message.as_str()),
                    TxStatus::Success => ("", ""),
                };
                return Err(usage(
                    "deploy_failed",
                    format!(
                        "deployment {hash} failed on chain ({code}): {}",
                        message.lines().next().unwrap_or("")
                    ),
                ));
            }
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
            no_dry_run,
        } => {
            let (to, input, abi) = encode_call(&spec)?;
            if !no_dry_run {
                dry_run(client, &signer, &to, &input, value).await?;
            }
            let action = Action::Call { to, input, value };
            let tx = sign(client, &signer, action, None).await?;
            let hash = client.submit(&tx).await?;
            util::conclude(ctx, hash, wait, |receipt, out| {
                let output = if receipt.is_success() {
                    decode_output(&spec, abi.as_ref(), &receipt.output)
                        .unwrap_or(serde_json::Value::Null)
                } else {
                    serde_json::Value::Null
                };
                let text = format!("\noutput    {output}\nevents    {}", receipt.events.len());
                out["output"] = output;
                text
            })
            .await?;
            Ok(())
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
            let out: Vec<serde_json::Value> = events
                .iter()
                .map(|e| {
                    let mut v = util::event_json(&e.event);
                    v["height"] = e.height.into();
                    v["tx_hash"] = serde_json::json!(e.tx_hash);
                    v["tx_index"] = e.tx_index.into();
                    v["log_index"] = e.log_index.into();
                    v
                })
                .collect();
            print(json, &out, || {
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
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| {
        usage(
            "bad_args",
            format!("--args is not JSON ({e}): write a JSON array, e.g. '[\"0xab…\", 5]'"),
        )
    })?;
    if !v.is_array() {
        return Err(usage(
            "bad_args",
            format!("--args must be a JSON array of arguments, got {s}"),
        ));
    }
    Ok(v)
}

/// Refuse, before anything is signed, a file that is not a contract the
/// WASM VM would accept (deploying it would only fail on chain and cost
/// gas).
fn check_wasm(path: &Path, code: &[u8]) -> Result<()> {
    if !code.starts_with(b"\0asm") {
        return Err(usage(
            "invalid_code",
            format!(
                "{} is not a WebAssembly module (it does not begin with \\0asm); build the contract for wasm32-unknown-unknown, or pass EVM code with --evm",
                path.display()
            ),
        ));
    }
    tongtian_vm_wasm::WasmVm::new()
        .validate(code)
        .map_err(|e| {
            usage(
                "invalid_code",
                format!(
                    "{} is not a contract the chain accepts: {}",
                    path.display(),
                    e.message().lines().next().unwrap_or("")
                ),
            )
        })?;
    Ok(())
}

/// Run the call read-only first, as the signer, and refuse to send it if
/// it would fail: a failed call is mined and costs its gas.
async fn dry_run(
    client: &Client,
    signer: &SignerArgs,
    to: &Address,
    input: &[u8],
    value: u128,
) -> Result<()> {
    let key = load_key(&signer.key, signer.password.as_deref())?;
    let from = Address::from_public_key(key.suite(), key.public_key());
    let call = serde_json::json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "data": format!("0x{}", hex::encode(input)),
        "value": format!("0x{value:x}"),
        "gas": format!("0x{:x}", signer.gas_limit),
    });
    match client.eth("eth_call", serde_json::json!([call, "latest"])).await {
        Ok(_) => Ok(()),
        Err(tongtian_client::ClientError::Api { message, .. }) => Err(usage(
            "call_would_fail",
            format!(
                "the call would fail, so nothing was sent: {}; check --method and --args (or pass --no-dry-run to send it anyway)",
                message.lines().next().unwrap_or("")
            ),
        )),
        Err(e) => Err(e.into()),
    }
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
            let input = evm_abi::encode_call(&abi, &spec.method, &args).map_err(|e| {
                usage(
                    "bad_args",
                    format!("--args do not fit {} in the ABI: {e}", spec.method),
                )
            })?;
            (to, input, Some(abi))
        }
        None => (
            to,
            tongtian_vm_wasm::json::encode_input(&spec.method, &args)
                .map_err(|e| usage("bad_args", format!("--args: {e}")))?,
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
