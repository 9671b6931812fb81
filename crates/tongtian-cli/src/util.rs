//! What every command group shares: printing (`--json` or text), errors
//! with stable codes, key loading with password prompts, address parsing,
//! and waiting for a transaction with progress. This module imports no
//! command module, so every one of them can import it.
//!
//! ## The `--json` vocabulary
//! - a transaction hash is `tx_hash`, everywhere;
//! - `status` is a plain string: `success` or `failed` for a receipt,
//!   `pending`, `queued` or `committed` for a transaction;
//! - a failure's reason is `error: {"code", "message"}`, as is every error
//!   a command exits with (printed on stdout under `--json`);
//! - a transaction's place in its block is `height` and `tx_index`;
//! - event attributes are an object `{key: value}`.

use crate::SignerArgs;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};
use tongtian_client::{Client, ClientError};
use tongtian_crypto::keyfile::{AnyKey, KeyFile};
use tongtian_crypto::Keypair;
use tongtian_crypto::SuiteId;
use tongtian_types::{Action, Address, Receipt, Transaction, TxStatus, H256};

/// What every command that talks to a node gets from the global options.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The node (`--node`, with `--timeout` per request).
    pub client: Client,
    /// `--json`.
    pub json: bool,
    /// How long `--wait` waits for a receipt (`--wait-timeout`).
    pub wait: Duration,
}

/// A mistake of the caller's the CLI finds before asking a node, with a
/// stable code for `--json`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// Stable code, e.g. `bad_args`.
    pub code: &'static str,
    /// What is wrong and what to do instead.
    pub message: String,
}

/// An error whose details the command has already printed (under
/// `--json`, a failed receipt): only its one-line message goes to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

/// A [`UsageError`] as an `anyhow` error.
pub fn usage(code: &'static str, message: impl Into<String>) -> anyhow::Error {
    UsageError {
        code,
        message: message.into(),
    }
    .into()
}

/// Print `value` as JSON, or the human text `human` makes.
pub fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

/// `s` as an address, or an error that says what one looks like.
pub fn parse_address(s: &str) -> Result<Address> {
    s.parse().map_err(|_| {
        usage(
            "bad_address",
            format!("{s:?} is not an address: expected 0x and 40 hex digits"),
        )
    })
}

/// `s` as a transaction hash.
pub fn parse_hash(s: &str) -> Result<H256> {
    s.parse().map_err(|_| {
        usage(
            "bad_hash",
            format!("{s:?} is not a transaction hash: expected 0x and 64 hex digits"),
        )
    })
}

/// Load a key file of the chain's suite. An encrypted one takes
/// `password` (from `--password` or `TONGTIAN_KEY_PASSWORD`), or asks for
/// it on a terminal. An Ethereum account key is refused with what it can do.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<Keypair> {
    match load_any_key(path, password)? {
        AnyKey::Native(kp) => Ok(kp),
        AnyKey::Ethereum(_) => Err(usage(
            "ethereum_key",
            format!(
                "{} is an Ethereum account key: it signs `tongtian transfer` and Ethereum tools' transactions; this command needs a key of the chain's suite (`tongtian key new`)",
                path.display()
            ),
        )),
    }
}

/// Load a key file of either kind (see [`load_key`]).
pub fn load_any_key(path: &Path, password: Option<&str>) -> Result<AnyKey> {
    let kf = KeyFile::read(path).with_context(|| format!("cannot read key {}", path.display()))?;
    if !kf.is_encrypted() {
        return kf
            .open_any(None)
            .with_context(|| format!("cannot open key {}", path.display()));
    }
    let password = match password {
        Some(p) => p.to_string(),
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("password for {}: ", path.display()))
                .context("reading the password")?
        }
        None => {
            return Err(usage(
                "password_needed",
                format!(
                    "{} is encrypted: run on a terminal to be asked for its password, or set TONGTIAN_KEY_PASSWORD",
                    path.display()
                ),
            ))
        }
    };
    kf.open_any(Some(&password))
        .with_context(|| format!("cannot open key {} (wrong password?)", path.display()))
}

/// Ask for a new password twice on a terminal.
pub fn new_password() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "password_needed",
            "--encrypt asks for the password on a terminal; without one, set TONGTIAN_KEY_PASSWORD",
        ));
    }
    let first = rpassword::prompt_password("new password: ").context("reading the password")?;
    let again = rpassword::prompt_password("again: ").context("reading the password")?;
    if first != again {
        return Err(usage("password_mismatch", "the two passwords differ"));
    }
    Ok(first)
}

/// The stable code and one-line message of an error a command ended with.
/// Causes that repeat what the message already says are left out (so
/// "File exists (os error 17)" is said once).
pub fn error_report(e: &anyhow::Error) -> (String, String) {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    let code = e
        .chain()
        .find_map(|c| {
            if let Some(u) = c.downcast_ref::<UsageError>() {
                return Some(u.code.to_string());
            }
            if let Some(ce) = c.downcast_ref::<ClientError>() {
                return Some(ce.stable_code().to_string());
            }
            c.downcast_ref::<std::io::Error>().map(|_| "io".to_string())
        })
        .unwrap_or_else(|| "error".to_string());
    (code, message)
}

/// Print an error a command ended with: `{"error": {"code", "message"}}`
/// on stdout under `--json`, `error: message` on stderr otherwise.
pub fn report_error(json: bool, e: &anyhow::Error) {
    let (code, message) = error_report(e);
    let reported = e.chain().any(|c| c.is::<Reported>());
    if json && !reported {
        println!(
            "{}",
            json!({ "error": { "code": code, "message": message } })
        );
    } else {
        eprintln!("error: {message}");
    }
}

/// A receipt in the CLI's vocabulary.
pub fn receipt_json(r: &Receipt) -> Value {
    let (status, error) = match &r.status {
        TxStatus::Success => ("success", Value::Null),
        TxStatus::Failed { code, message } => {
            ("failed", json!({ "code": code, "message": message }))
        }
    };
    let mut out = json!({
        "tx_hash": r.tx_hash,
        "status": status,
        "height": r.height,
        "tx_index": r.index,
        "sender": r.sender,
        "gas_used": r.gas_used,
        "fee": r.fee.to_string(),
        "events": r.events.iter().map(event_json).collect::<Vec<_>>(),
        "output": format!("0x{}", hex::encode(&r.output)),
    });
    if !error.is_null() {
        out["error"] = error;
    }
    if let Some(a) = &r.contract_address {
        out["contract_address"] = json!(a);
    }
    out
}

/// An event in the CLI's vocabulary: attributes as an object.
pub fn event_json(e: &tongtian_types::Event) -> Value {
    let attributes: serde_json::Map<String, Value> = e
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({ "name": e.name, "emitter": e.emitter, "attributes": attributes })
}

/// A receipt's status as text: `success` or `failed (code: message)`.
pub fn status_text(s: &TxStatus) -> String {
    match s {
        TxStatus::Success => "success".into(),
        TxStatus::Failed { code, message } => format!("failed ({code}: {message})"),
    }
}

/// The end of a command that sent a transaction: without `wait`, print its
/// hash; with it, wait for its receipt, print it (`decorate` may add to the
/// JSON, e.g. a decoded output, and returns extra text lines), and fail if
/// the transaction failed.
pub async fn conclude(
    ctx: &Ctx,
    hash: H256,
    wait: bool,
    decorate: impl FnOnce(&Receipt, &mut Value) -> String,
) -> Result<Option<Receipt>> {
    let json = ctx.json;
    if !wait {
        print(
            json,
            &json!({ "tx_hash": hash, "status": "submitted" }),
            || hash.to_string(),
        )?;
        return Ok(None);
    }
    let r = wait_receipt(&ctx.client, &hash, ctx.wait).await?;
    let mut out = receipt_json(&r);
    let extra = decorate(&r, &mut out);
    print(json, &out, || {
        format!(
            "hash      {hash}\nstatus    {}\nheight    {}\ngas used  {}\nfee       {}{extra}",
            status_text(&r.status),
            r.height,
            r.gas_used,
            r.fee
        )
    })?;
    if !r.is_success() {
        return Err(Reported(format!(
            "transaction {hash} failed: {}",
            status_text(&r.status)
        ))
        .into());
    }
    Ok(Some(r))
}

/// Wait for the receipt of `hash`. On a terminal, a status line says what
/// the node says of the transaction meanwhile (pending; queued behind the
/// sender's nonce N; not seen); a timeout says the last of those.
pub async fn wait_receipt(client: &Client, hash: &H256, within: Duration) -> Result<Receipt> {
    let deadline = Instant::now() + within;
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut why = "not seen by the node yet".to_string();
    let mut last_check = None::<Instant>;
    loop {
        match client.receipt(hash).await {
            Ok(r) => {
                if tty {
                    eprint!("\r\x1b[K");
                }
                return Ok(r);
            }
            Err(ClientError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if last_check.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            last_check = Some(Instant::now());
            why = waiting_reason(client, hash).await;
            if tty {
                eprint!(
                    "\r\x1b[Kwaiting for {hash}: {why} ({}s)",
                    started.elapsed().as_secs()
                );
            }
        }
        if Instant::now() >= deadline {
            if tty {
                eprintln!();
            }
            return Err(usage(
                "wait_timeout",
                format!("no receipt for {hash} after {}s: {why}", within.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the node says of a transaction without a receipt.
async fn waiting_reason(client: &Client, hash: &H256) -> String {
    let Ok(tx) = client.tx(hash).await else {
        return "not seen by the node (dropped, or sent to another node)".into();
    };
    match tx.status.as_str() {
        "queued" => {
            let next = client
                .account(&tx.sender)
                .await
                .map(|a| a.pending_nonce)
                .ok();
            match next {
                Some(n) => format!(
                    "queued: its nonce is {}, and the sender's nonce {n} must be sent first",
                    tx.tx.tx.nonce
                ),
                None => format!("queued behind an earlier nonce than {}", tx.tx.tx.nonce),
            }
        }
        "pending" => "pending: waiting to be included in a block".into(),
        other => other.to_string(),
    }
}

/// Wait for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
    sign_with(client, &key, signer, action, nonce).await
}

/// Sign `action` with an already loaded key, as [`sign`] does.
pub async fn sign_with(
    client: &Client,
    key: &tongtian_crypto::Keypair,
    signer: &SignerArgs,
    action: Action,
    nonce: Option<u64>,
) -> Result<tongtian_types::SignedTransaction> {
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
    .sign(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_cause_is_said_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "File exists (os error 17)",
        );
        let e = anyhow::Error::new(io).context("File exists (os error 17)");
        assert_eq!(
            error_report(&e),
            ("io".to_string(), "File exists (os error 17)".to_string())
        );
        let e = anyhow::Error::new(std::io::Error::other("disk full")).context("writing a.key");
        assert_eq!(error_report(&e).1, "writing a.key: disk full");
    }

    #[test]
    fn usage_errors_keep_their_code() {
        let e = parse_address("0x12").unwrap_err().context("reading --to");
        let (code, message) = error_report(&e);
        assert_eq!(code, "bad_address");
        assert!(
            message.starts_with("reading --to: \"0x12\" is not an address"),
            "{message}"
        );
    }

    #[test]
    fn receipts_use_one_vocabulary() {
        let r = Receipt {
            tx_hash: H256([7; 32]),
            height: 3,
            index: 2,
            sender: Address([1; 20]),
            status: TxStatus::Failed {
                code: "out_of_gas".into(),
                message: "ran out".into(),
            },
            gas_used: 10,
            fee: 10,
            events: vec![tongtian_types::Event {
                emitter: Address([2; 20]),
                name: "transfer".into(),
                attributes: vec![("to".into(), "0xab".into())],
            }],
            output: vec![],
            contract_address: None,
        };
        let v = receipt_json(&r);
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["code"], "out_of_gas");
        assert_eq!(v["tx_index"], 2);
        assert!(v.get("index").is_none());
        assert_eq!(v["events"][0]["attributes"]["to"], "0xab");
    }
}
