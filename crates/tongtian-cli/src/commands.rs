//! Command bodies.

use crate::{
    AccountCommand, BenchCommand, BlockCommand, Cli, Command, DevArgs, KeyCommand, NodeCommand,
    TestnetCommand, TransferArgs, TxCommand, ValidatorsCommand,
};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use tongtian_client::Client;
use tongtian_crypto::keyfile::KeyFile;
use tongtian_crypto::{suite, Keypair, SuiteId};
use tongtian_node::{dev, ChainRuntime};
use tongtian_types::{Action, Address, ChainSpec, Transaction, H256};

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let client = Client::new(&cli.node);
    let json = cli.json;
    match cli.command {
        Command::Dev(args) => run_dev(args).await,
        Command::Node(NodeCommand::Start { home, password }) => {
            run_node(&home, password.as_deref()).await
        }
        Command::Testnet(TestnetCommand::Init {
            nodes,
            consensus,
            suite,
            dir,
            base_port,
        }) => {
            let net =
                tongtian_node::config::testnet_init(&dir, nodes, &consensus, suite, base_port)?;
            let out = serde_json::json!({
                "dir": dir.display().to_string(),
                "chain_id": net.spec.chain_id,
                "consensus": consensus,
                "suite": suite,
                "nodes": net.homes.iter().map(|h| h.display().to_string()).collect::<Vec<_>>(),
                "apis": (0..nodes).map(|i| format!("http://127.0.0.1:{}", base_port as usize + i)).collect::<Vec<_>>(),
                "dev_keys": net.dev_keys.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            });
            print(json, &out, || {
                format!(
                    "wrote {} node homes for a {consensus} chain ({suite}) in {}\nstart them with: tongtian testnet up --dir {}",
                    nodes,
                    dir.display(),
                    dir.display()
                )
            })
        }
        Command::Testnet(TestnetCommand::Up { dir }) => crate::testnet::up(&dir).await,
        Command::Key(cmd) => key(cmd, json),
        Command::Account(AccountCommand::Show { address }) => {
            let a = parse_address(&address)?;
            let view = client.account(&a).await?;
            print(json, &view, || {
                format!(
                    "address  {}\nbalance  {}\nnonce    {}\nheight   {}",
                    view.address, view.balance, view.nonce, view.height
                )
            })
        }
        Command::Account(AccountCommand::Prove {
            address,
            height,
            spec,
        }) => prove(&client, &address, height, spec.as_deref(), json).await,
        Command::Transfer(args) => transfer(&client, args, json).await,
        Command::Block(BlockCommand::Show { id }) => {
            let b = client.block(&id).await?;
            print(json, &b, || {
                let h = &b.header;
                format!(
                    "height       {}\nhash         {}\nparent       {}\ntime (ms)    {}\ntxs          {}\ntx root      {}\nstate root   {}\nreceipts     {}\nproposer     {}\ncertificate  {} ({} signatures)",
                    h.height, b.hash, h.parent_hash, h.timestamp_ms, h.tx_count, h.tx_root, h.state_root, h.receipts_root, h.proposer,
                    b.certificate.engine, b.certificate.signatures.len()
                )
            })
        }
        Command::Tx(TxCommand::Show { hash }) => {
            let h: H256 = hash
                .parse()
                .with_context(|| format!("{hash:?} is not a 0x transaction hash"))?;
            let tx = client.tx(&h).await?;
            let receipt = match client.receipt(&h).await {
                Ok(r) => Some(r),
                Err(e) if e.code() == Some("not_found") => None,
                Err(e) => return Err(e.into()),
            };
            let out = serde_json::json!({ "transaction": tx, "receipt": receipt });
            print(json, &out, || {
                serde_json::to_string_pretty(&out).unwrap_or_default()
            })
        }
        Command::Validators(cmd) => validators(&client, cmd, json).await,
        Command::Contract(cmd) => crate::contract::run(&client, cmd, json).await,
        Command::Bench(BenchCommand::Contracts(args)) => {
            let report = crate::contract_bench::run(args).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Transfers(args)) => {
            let report = crate::bench::transfers(&cli.node, args).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

pub(crate) fn print<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

pub(crate) fn parse_address(s: &str) -> Result<Address> {
    s.parse()
        .with_context(|| format!("{s:?} is not a 0x-prefixed 20-byte address"))
}

/// Load a key file, asking for the password only if it is encrypted.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<Keypair> {
    let kf = KeyFile::read(path)?;
    if kf.is_encrypted() && password.is_none() {
        bail!(
            "{} is encrypted: pass --password or set TONGTIAN_KEY_PASSWORD",
            path.display()
        );
    }
    kf.open(password)
        .with_context(|| format!("opening {}", path.display()))
}

fn key(cmd: KeyCommand, json: bool) -> Result<()> {
    let (kp, path) = match cmd {
        KeyCommand::New {
            out,
            suite,
            password,
        } => {
            let kp = Keypair::generate(suite);
            KeyFile::seal(&kp, password.as_deref())?.write(&out)?;
            (kp, out)
        }
        KeyCommand::Show { file, password } => (load_key(&file, password.as_deref())?, file),
    };
    let out = serde_json::json!({
        "file": path.display().to_string(),
        "address": Address::from_public_key(kp.suite(), kp.public_key()),
        "public_key": format!("0x{}", hex::encode(kp.public_key())),
        "suite": kp.suite(),
    });
    print(json, &out, || {
        format!(
            "file        {}\naddress     {}\npublic key  0x{}\nsuite       {}",
            path.display(),
            Address::from_public_key(kp.suite(), kp.public_key()),
            hex::encode(kp.public_key()),
            kp.suite()
        )
    })
}

fn read_set(path: &Path) -> Result<Vec<tongtian_types::ValidatorSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected [{{\"name\", \"public_key\"}}, ...]",
            path.display()
        )
    })
}

async fn validators(client: &Client, cmd: ValidatorsCommand, json: bool) -> Result<()> {
    match cmd {
        ValidatorsCommand::Show => {
            let set = client.validators().await?;
            print(json, &set, || {
                let mut out = format!(
                    "version {}, {} validators",
                    set.version,
                    set.validators.len()
                );
                for v in &set.validators {
                    out.push_str(&format!("\n  {}  0x{}", v.name, hex::encode(&v.public_key)));
                }
                out
            })
        }
        ValidatorsCommand::Approve { key, password, set } => {
            let key = load_key(&key, password.as_deref())?;
            let next = read_set(&set)?;
            let status = client.status().await?;
            let current = client.validators().await?;
            if !current
                .validators
                .iter()
                .any(|v| v.public_key == key.public_key())
            {
                bail!("this key is not a current validator; its approval would not count");
            }
            let approval = tongtian_types::CertificateSignature {
                public_key: key.public_key().to_vec(),
                signature: key.sign(&current.change_bytes(status.chain_id, &next)),
            };
            println!("{}", serde_json::to_string_pretty(&approval)?);
            Ok(())
        }
        ValidatorsCommand::Propose {
            key,
            password,
            set,
            approvals,
            wait,
        } => {
            let key = load_key(&key, password.as_deref())?;
            let next = read_set(&set)?;
            let approvals = approvals
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not an approval", p.display()))
                })
                .collect::<Result<Vec<tongtian_types::CertificateSignature>>>()?;
            let status = client.status().await?;
            let from = Address::from_public_key(key.suite(), key.public_key());
            let nonce = client.account(&from).await?.pending_nonce;
            let tx = Transaction {
                chain_id: status.chain_id,
                nonce,
                gas_limit: 1_000_000,
                gas_price: 1,
                action: Action::SetValidators {
                    validators: next,
                    approvals,
                },
            }
            .sign(&key);
            let hash = client.submit(&tx).await?;
            if !wait {
                return print(json, &serde_json::json!({ "hash": hash }), || {
                    hash.to_string()
                });
            }
            let receipt = client.wait_receipt(&hash, Duration::from_secs(60)).await?;
            print(json, &receipt, || format!("{hash}: {:?}", receipt.status))?;
            if !receipt.is_success() {
                bail!("validator change {hash} failed: {:?}", receipt.status);
            }
            Ok(())
        }
    }
}

async fn transfer(client: &Client, args: TransferArgs, json: bool) -> Result<()> {
    let to = parse_address(&args.to)?;
    let signer = crate::SignerArgs {
        key: args.key.clone(),
        password: args.password.clone(),
        gas_limit: args.gas_limit,
        gas_price: args.gas_price,
    };
    let tx = crate::contract::sign(
        client,
        &signer,
        Action::Transfer {
            to,
            amount: args.amount,
            memo: args.memo.into_bytes(),
        },
        args.nonce,
    )
    .await?;
    let hash = client.submit(&tx).await?;
    if !args.wait {
        return print(json, &serde_json::json!({ "hash": hash }), || {
            hash.to_string()
        });
    }
    let receipt = client.wait_receipt(&hash, Duration::from_secs(60)).await?;
    print(json, &receipt, || {
        let status = match &receipt.status {
            tongtian_types::TxStatus::Success => "success".to_string(),
            tongtian_types::TxStatus::Failed { code, message } => {
                format!("failed ({code}: {message})")
            }
        };
        format!(
            "hash     {}\nstatus   {}\nheight   {}\ngas used {}\nfee      {}",
            hash, status, receipt.height, receipt.gas_used, receipt.fee
        )
    })?;
    if !receipt.is_success() {
        bail!("transaction {hash} failed");
    }
    Ok(())
}

async fn prove(
    client: &Client,
    address: &str,
    height: Option<u64>,
    spec: Option<&Path>,
    json: bool,
) -> Result<()> {
    let a = parse_address(address)?;
    let status = client.status().await?;
    let suite_id: SuiteId = status.suite.parse()?;
    let s = suite(suite_id);
    let view = client.account_proof(&a, height).await?;
    // 1. The proof is for this account and leads to the header's state root.
    if view.proof.key != tongtian_execution::account_key(&a) {
        bail!("the node returned a proof for another key");
    }
    view.proof
        .verify(s, &view.header.state_root)
        .with_context(|| {
            format!(
                "proof does not verify against the state root of block {}",
                view.header.height
            )
        })?;
    let proven = match &view.proof.value {
        Some(v) => Some(tongtian_types::codec::decode::<tongtian_types::Account>(
            "account", v,
        )?),
        None => None,
    };
    if proven != view.account {
        bail!("the account the node reported differs from the proven one");
    }
    // 2. The header is the one the certificate signs.
    let hash = view.header.hash(suite_id);
    if view.certificate.block_hash != hash {
        bail!("the certificate signs another header");
    }
    // 3. The certificate: against a trusted spec's validators when given.
    let (validators, quorum, against) = match spec {
        Some(p) => {
            let spec = ChainSpec::from_json(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )?;
            if spec.chain_id != status.chain_id {
                bail!(
                    "the spec is for chain {}, the node serves chain {}",
                    spec.chain_id,
                    status.chain_id
                );
            }
            let vals: Vec<Vec<u8>> = spec
                .validators
                .iter()
                .map(|v| v.public_key.clone())
                .collect();
            (vals, tongtian_consensus::quorum(&spec), "spec")
        }
        None => {
            let vals: Vec<Vec<u8>> = view
                .certificate
                .signatures
                .iter()
                .map(|s| s.public_key.clone())
                .collect();
            (
                vals,
                1,
                "self-reported signers (pass --spec to check validator membership)",
            )
        }
    };
    let genesis = view.header.height == 0;
    if !genesis && !view.certificate.verify(s, &validators, quorum, &hash) {
        bail!(
            "the certificate of block {} does not carry a quorum of valid validator signatures",
            view.header.height
        );
    }
    let out = serde_json::json!({
        "address": a,
        "height": view.height,
        "account": view.account,
        "exists": view.account.is_some(),
        "state_root": view.header.state_root,
        "block_hash": hash,
        "proof_depth": view.proof.siblings.len(),
        "verified": true,
        "certificate_checked_against": if genesis { "genesis (fixed by the spec)" } else { against },
    });
    print(json, &out, || {
        let acct = view
            .account
            .as_ref()
            .map_or("absent (non-inclusion proven)".to_string(), |a| {
                format!("balance {}, nonce {}", a.balance, a.nonce)
            });
        format!(
            "address     {a}\nheight      {}\naccount     {acct}\nstate root  {}\nblock       {hash}\nproof       {} siblings, verified\ncertificate verified against {}",
            view.height, view.header.state_root, view.proof.siblings.len(), if genesis { "genesis" } else { against }
        )
    })
}

async fn run_node(home: &Path, password: Option<&str>) -> Result<()> {
    admission_at_low_priority();
    let home_cfg = tongtian_node::config::NodeHome::load(home, password)?;
    let network = tongtian_network::Network::start(home_cfg.network_config()?)
        .await
        .with_context(|| format!("cannot listen for peers on {}", home_cfg.config.p2p))?;
    let runtime = ChainRuntime::open(
        &home_cfg.data_dir.join("chain"),
        home_cfg.spec.clone(),
        home_cfg.key.clone(),
    )?;
    let listener = tokio::net::TcpListener::bind(home_cfg.config.api)
        .await
        .with_context(|| format!("cannot listen on {}", home_cfg.config.api))?;
    tracing::info!(
        node = %home_cfg.config.name,
        api = %home_cfg.config.api,
        p2p = %network.local_addr(),
        engine = %home_cfg.spec.consensus.engine,
        height = runtime.latest().0,
        "node starting"
    );
    let faults = home_cfg.config.fault_injection;
    let byzantine = if faults {
        tracing::warn!("fault injection is enabled: POST /v1/debug/network can cut this node off");
        tongtian_consensus::Faults::parse(&home_cfg.config.byzantine)?
    } else {
        tongtian_consensus::Faults::default()
    };
    serve_until_signal(
        runtime,
        Some(network.clone()),
        listener,
        faults,
        byzantine,
        tongtian_api::ApiOptions::default(),
    )
    .await?;
    network.shutdown();
    Ok(())
}

/// Start the chain's engine and API, run until SIGINT/SIGTERM, then stop
/// the engine (after its block in progress) and the API.
async fn serve_until_signal(
    runtime: std::sync::Arc<ChainRuntime>,
    network: Option<tongtian_network::Network>,
    listener: tokio::net::TcpListener,
    fault_injection: bool,
    byzantine: tongtian_consensus::Faults,
    api_options: tongtian_api::ApiOptions,
) -> Result<()> {
    let running = runtime.start_with_faults(network, byzantine)?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut router = tongtian_api::router(runtime.clone(), api_options);
    if fault_injection {
        router = router.merge(tongtian_api::fault_injection(runtime.clone()));
    }
    let api = tokio::spawn(tongtian_api::serve_router(listener, router, async {
        let _ = api_stopped.await;
    }));
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Err(e) = running.stop(Duration::from_secs(10)).await {
        tracing::error!(error = %e, "engine did not stop cleanly");
    }
    let _ = stop_api.send(());
    // Open event streams keep graceful shutdown waiting; do not wait long.
    let _ = tokio::time::timeout(Duration::from_secs(2), api).await;
    Ok(())
}

async fn run_dev(args: DevArgs) -> Result<()> {
    admission_at_low_priority();
    let chain = dev::init_or_load(&args.data_dir, args.suite)?;
    let runtime = ChainRuntime::open(
        &chain.chain_dir,
        chain.spec.clone(),
        chain.validator.clone(),
    )?;
    let listener = tokio::net::TcpListener::bind(args.api)
        .await
        .with_context(|| format!("cannot listen on {}", args.api))?;
    let api_addr = listener.local_addr()?;
    println!("Tongtian dev chain");
    println!("  chain id    {}", chain.spec.chain_id);
    println!("  suite       {}", chain.spec.suite);
    println!("  height      {}", runtime.latest().0);
    println!("  data dir    {}", args.data_dir.display());
    println!("  api         http://{api_addr}");
    println!(
        "  dev accounts (keys in {}):",
        args.data_dir.join("dev-keys").display()
    );
    for (path, acct) in chain.dev_keys.iter().zip(&chain.spec.accounts) {
        println!("    {}  {}", acct.address, path.display());
    }
    let unlocked = tongtian_api::accounts::UnlockedAccounts::dev();
    println!(
        "  Ethereum dev accounts (mnemonic \"{}\"), unlocked for eth_sendTransaction and eth_sign*:",
        tongtian_crypto::eth::DEV_MNEMONIC
    );
    for (address, key) in unlocked.keys() {
        println!("    {address}  key 0x{}", hex::encode(key.secret()));
    }
    tracing::info!(api = %api_addr, "dev chain running");
    serve_until_signal(
        runtime,
        None,
        listener,
        false,
        Default::default(),
        tongtian_api::ApiOptions {
            unlocked,
            ..Default::default()
        },
    )
    .await
}

/// Wait for SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() {
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

/// Signature checks of incoming transactions (rayon's global pool, which
/// only they use in a node) run at a lower priority than the threads that
/// execute and write blocks. Under a flood of submissions the block
/// builder then keeps its core instead of sharing it with admission, so
/// blocks keep coming and admission takes the time that is left; when
/// there is no block work, admission still gets every core.
fn admission_at_low_priority() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("admission-{i}"))
        .start_handler(|_| lower_this_thread())
        .build_global();
    if let Err(e) = built {
        tracing::debug!(error = %e, "signature pool already set up");
    }
}

/// How many nice levels below the node's own priority the admission
/// threads run.
#[cfg(target_os = "linux")]
const ADMISSION_NICENESS: libc::c_int = 10;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_this_thread() {
    // SAFETY: `nice` takes no pointers; on Linux it changes only the
    // calling thread's priority (nice values are per thread there), and
    // lowering one's own priority is always allowed.
    let now = unsafe { libc::nice(ADMISSION_NICENESS) };
    tracing::trace!(nice = now, "signature thread priority lowered");
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread() {}
