//! Command bodies.

use crate::util::{self, load_key, parse_address, parse_hash, print, receipt_json, usage};
use crate::{
    AccountCommand, BenchCommand, BlockCommand, Cli, Command, DevArgs, KeyCommand, NodeCommand,
    TestnetCommand, TransferArgs, TxCommand, ValidatorsCommand,
};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tongtian_client::Client;
use tongtian_crypto::eth::EthKey;
use tongtian_crypto::keyfile::{AnyKey, KeyFile};
use tongtian_crypto::{suite, Keypair, SuiteId};
use tongtian_node::{dev, ChainRuntime};
use tongtian_types::{Action, Address, ChainSpec, Transaction};

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let first = cli
        .node
        .first()
        .cloned()
        .unwrap_or_else(|| tongtian_client::DEFAULT_NODE.to_string());
    let client = Client::with_timeout(&first, Duration::from_secs(cli.timeout.max(1)))
        .chain(cli.chain.as_deref());
    let json = cli.json;
    let ctx = util::Ctx {
        client: client.clone(),
        json,
        wait: Duration::from_secs(cli.wait_timeout),
    };
    match cli.command {
        Command::Dev(args) => run_dev(args, json).await,
        Command::Status => {
            let st = client.status().await?;
            print(json, &st, || {
                format!(
                    "node        {}\nchain       {} (id {})\nheight      {}\nlatest      {}\nsuite       {}\nconsensus   {}\nvalidator   {}\npeers       {}\npool        {} pending, {} queued\nversion     {}",
                    client.base(),
                    st.chain_name,
                    st.chain_id,
                    st.height,
                    st.latest_hash,
                    st.suite,
                    st.consensus,
                    st.validator,
                    st.peers,
                    st.mempool_size,
                    st.mempool_queued,
                    st.version
                )
            })
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "tongtian", &mut std::io::stdout());
            Ok(())
        }
        Command::Node(NodeCommand::Start {
            home,
            password,
            relay,
        }) => run_node(&home, password.as_deref(), relay).await,
        Command::Testnet(TestnetCommand::Init {
            nodes,
            consensus,
            suite,
            dir,
            base_port,
            orgs,
        }) => {
            let net = tongtian_node::config::testnet_init(
                &dir, nodes, &consensus, suite, base_port, orgs,
            )?;
            let out = serde_json::json!({
                "dir": dir.display().to_string(),
                "chain_id": net.spec.chain_id,
                "consensus": consensus,
                "suite": suite,
                "nodes": net.homes.iter().map(|h| h.display().to_string()).collect::<Vec<_>>(),
                "apis": (0..nodes).map(|i| format!("http://127.0.0.1:{}", base_port as usize + i)).collect::<Vec<_>>(),
                "dev_keys": net.dev_keys.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "orgs": net.orgs.iter().map(|(id, key)| json!({"id": id, "admin_key": key.display().to_string()})).collect::<Vec<_>>(),
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
        Command::Testnet(TestnetCommand::Up { dir }) => crate::testnet::up(&dir, &cli.log).await,
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
        Command::Transfer(args) => transfer(&ctx, args).await,
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
            let h = parse_hash(&hash)?;
            let tx = client.tx(&h).await?;
            let receipt = match client.receipt(&h).await {
                Ok(r) => Some(r),
                Err(e) if e.code() == Some("not_found") => None,
                Err(e) => return Err(e.into()),
            };
            let out = json!({
                "tx_hash": tx.hash,
                "status": tx.status,
                "height": tx.height,
                "tx_index": tx.index,
                "sender": tx.sender,
                "nonce": tx.tx.tx.nonce,
                "gas_limit": tx.tx.tx.gas_limit,
                "gas_price": tx.tx.tx.gas_price,
                "transaction": tx.tx,
                "receipt": receipt.as_ref().map(receipt_json),
            });
            print(json, &out, || {
                let mut text = format!(
                    "hash      {}\nstatus    {}\nsender    {}\nnonce     {}",
                    tx.hash, tx.status, tx.sender, tx.tx.tx.nonce
                );
                if let (Some(height), Some(index)) = (tx.height, tx.index) {
                    text.push_str(&format!("\nblock     {height} (index {index})"));
                }
                if let Some(r) = &receipt {
                    text.push_str(&format!(
                        "\nresult    {}\ngas used  {}\nfee       {}\nevents    {}",
                        util::status_text(&r.status),
                        r.gas_used,
                        r.fee,
                        r.events.len()
                    ));
                }
                text
            })
        }
        Command::Validators(cmd) => validators(&ctx, cmd).await,
        Command::Contract(cmd) => crate::contract::run(&ctx, cmd).await,
        Command::Chain(cmd) => crate::chain::run(&ctx, cmd).await,
        Command::Org(cmd) => crate::gov::org(&ctx, cmd).await,
        Command::Gov(cmd) => crate::gov::gov(&ctx, cmd).await,
        Command::Xchain(cmd) => crate::xchain::run(&ctx, cmd).await,
        Command::Data(cmd) => crate::data::run(&ctx, cmd).await,
        Command::Party(cmd) => crate::compute::party(&ctx, &first, cmd).await,
        Command::Compute(cmd) => crate::compute::compute(&ctx, cmd).await,
        Command::Job(cmd) => crate::compute::job(&ctx, cmd).await,
        Command::Relay(crate::RelayCommand::Start {
            key,
            password,
            chains,
            once,
        }) => {
            let keys = key
                .iter()
                .map(|k| load_key(k, password.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            crate::relay::run(
                &ctx,
                crate::relay::RelayArgs {
                    nodes: cli.node.clone(),
                    keys,
                    chains,
                    once,
                },
            )
            .await
        }
        Command::Relay(crate::RelayCommand::Evm(args)) => evm_link(&ctx, args, true).await,
        Command::Attest(crate::AttestCommand::Evm(args)) => evm_link(&ctx, args, false).await,
        Command::Bench(BenchCommand::Contracts(args)) => {
            let report = crate::contract_bench::run(args).await?;
            print(json, &report, || crate::contract_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Psi(args)) => {
            let report = crate::psi_bench::run(args).await?;
            print(json, &report, || crate::psi_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Secagg(args)) => {
            let report = crate::secagg_bench::run(args).await?;
            print(json, &report, || crate::secagg_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Lr(args)) => {
            let report = crate::lr_bench::run(args).await?;
            print(json, &report, || crate::lr_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Stats(args)) => {
            let report = crate::stats_bench::run(args).await?;
            print(json, &report, || crate::stats_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Xchain(args)) => {
            let report = crate::xchain_bench::run(args).await?;
            print(json, &report, || crate::xchain_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Chains(args)) => {
            let report = crate::chains_bench::run(args).await?;
            print(json, &report, || crate::chains_bench::summary(&report))
        }
        Command::Bench(BenchCommand::Transfers(args)) => {
            let report = crate::bench::transfers(client.base(), client.chain_name(), args).await?;
            print(json, &report, || crate::bench::summary(&report))
        }
    }
}

fn key(cmd: KeyCommand, json: bool) -> Result<()> {
    let (key, path) = match cmd {
        KeyCommand::New(target) => {
            let key = if target.eth {
                AnyKey::Ethereum(EthKey::generate())
            } else {
                AnyKey::Native(Keypair::generate(target.suite))
            };
            write_key(&key, &target)?;
            (key, target.out)
        }
        KeyCommand::Import(target) => {
            let secret = read_secret()?;
            let key = if target.eth {
                AnyKey::Ethereum(EthKey::from_secret(&secret).map_err(|e| {
                    usage(
                        "bad_key",
                        format!("that is not a secp256k1 private key: {e}"),
                    )
                })?)
            } else {
                let suite = target.suite;
                AnyKey::Native(Keypair::from_secret(suite, &secret).map_err(|e| {
                    usage("bad_key", format!("that is not a {suite} private key: {e}"))
                })?)
            };
            write_key(&key, &target)?;
            (key, target.out)
        }
        KeyCommand::Show { file, password } => {
            (util::load_any_key(&file, password.as_deref())?, file)
        }
    };
    let (address, public_key, suite) = match &key {
        AnyKey::Native(kp) => (
            Address::from_public_key(kp.suite(), kp.public_key()),
            Some(format!("0x{}", hex::encode(kp.public_key()))),
            kp.suite().to_string(),
        ),
        AnyKey::Ethereum(k) => (Address(k.address()), None, "ethereum".to_string()),
    };
    let out = json!({
        "file": path.display().to_string(),
        "address": address,
        "public_key": public_key,
        "suite": suite,
    });
    print(json, &out, || {
        let mut text = format!("file        {}\naddress     {address}", path.display());
        if let Some(p) = &public_key {
            text.push_str(&format!("\npublic key  {p}"));
        }
        text.push_str(&format!("\nsuite       {suite}"));
        text
    })
}

/// Write a key file as `target` says (encrypted with its password, or
/// one asked for with `--encrypt`), refusing to overwrite one.
fn write_key(key: &AnyKey, target: &crate::KeyOut) -> Result<()> {
    let out = &target.out;
    if out.exists() {
        return Err(usage(
            "file_exists",
            format!(
                "{} already exists; keys are never overwritten: choose another --out",
                out.display()
            ),
        ));
    }
    let password = match (&target.password, target.encrypt) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(util::new_password()?),
        (None, false) => None,
    };
    KeyFile::seal_any(key, password.as_deref())?
        .write(out)
        .with_context(|| format!("cannot write {}", out.display()))
}

/// A private key from standard input (one line of hex), or asked for on
/// a terminal without echo.
fn read_secret() -> Result<Vec<u8>> {
    use std::io::{BufRead, IsTerminal};
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("private key (hex): ").context("reading the key")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the key from standard input")?;
        line
    };
    let hex_text = line.trim().trim_start_matches("0x");
    let secret = hex::decode(hex_text).map_err(|_| {
        usage(
            "bad_key",
            "expected the private key as hex (64 hex digits, 0x optional)",
        )
    })?;
    if secret.len() != 32 {
        return Err(usage(
            "bad_key",
            format!(
                "expected a 32-byte private key (64 hex digits), got {} bytes",
                secret.len()
            ),
        ));
    }
    Ok(secret)
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

async fn validators(ctx: &util::Ctx, cmd: ValidatorsCommand) -> Result<()> {
    let (client, json) = (&ctx.client, ctx.json);
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
                action: tongtian_execution::membership::MembershipMsg::SetValidators {
                    validators: next,
                    approvals,
                }
                .action(),
            }
            .sign(&key);
            let hash = client.submit(&tx).await?;
            util::conclude(ctx, hash, wait, |_, _| String::new()).await?;
            Ok(())
        }
    }
}

async fn transfer(ctx: &util::Ctx, args: TransferArgs) -> Result<()> {
    let client = &ctx.client;
    let to = parse_address(&args.to)?;
    let tx = match util::load_any_key(&args.key, args.password.as_deref())? {
        AnyKey::Native(key) => {
            let signer = crate::SignerArgs {
                key: args.key.clone(),
                password: args.password.clone(),
                gas_limit: args.gas_limit,
                gas_price: args.gas_price,
            };
            crate::util::sign_with(
                client,
                &key,
                &signer,
                Action::Transfer {
                    to,
                    amount: args.amount,
                    memo: args.memo.into_bytes(),
                },
                args.nonce,
            )
            .await?
        }
        AnyKey::Ethereum(key) => eth_transfer(client, &key, to, &args).await?,
    };
    let hash = client.submit(&tx).await?;
    util::conclude(ctx, hash, args.wait, |_, _| String::new()).await?;
    Ok(())
}

/// A transfer from an Ethereum account key: an EIP-1559 transaction, as a
/// wallet would sign it, with Ethereum's 21,000 gas for a plain transfer.
async fn eth_transfer(
    client: &Client,
    key: &EthKey,
    to: Address,
    args: &TransferArgs,
) -> Result<tongtian_types::SignedTransaction> {
    if !args.memo.is_empty() {
        return Err(usage(
            "bad_args",
            "an Ethereum transaction carries no memo: drop --memo, or send from a native key",
        ));
    }
    let status = client.status().await?;
    let from = Address(key.address());
    let nonce = match args.nonce {
        Some(n) => n,
        None => client.account(&from).await?.pending_nonce,
    };
    let raw = tongtian_types::eth::sign_eip1559(
        key,
        status.chain_id,
        nonce,
        u128::from(args.gas_price),
        args.gas_limit.max(21_000),
        Some(to),
        args.amount,
        &[],
    );
    tongtian_types::SignedTransaction::from_ethereum(raw)
        .context("the Ethereum transaction just signed does not decode")
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

async fn run_node(home: &Path, password: Option<&str>, relay: bool) -> Result<()> {
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
    let mut keys = tongtian_node::host::ValidatorKeys::default();
    for suite in [SuiteId::Standard, SuiteId::Sm] {
        let path = home.join(format!("validator-{suite}.key"));
        if path.exists() {
            keys.insert(load_key(&path, password)?);
        }
    }
    keys.insert(home_cfg.key.clone());
    let launch = Launch {
        home: home_cfg.data_dir.clone(),
        transport_key: home_cfg.transport.public_key().to_vec(),
        keys,
        fault_injection: faults,
        byzantine,
        api_options: tongtian_api::ApiOptions::default(),
        relay,
    };
    serve_until_signal(runtime, Some(network.clone()), listener, launch).await?;
    network.shutdown();
    Ok(())
}

/// How a node is launched besides its main chain, network and listener.
struct Launch {
    /// Where its sub-chains live (`chains/{name}` below it).
    home: std::path::PathBuf,
    /// Its transport public key.
    transport_key: Vec<u8>,
    /// Its validator keys, one per suite.
    keys: tongtian_node::host::ValidatorKeys,
    fault_injection: bool,
    byzantine: tongtian_consensus::Faults,
    api_options: tongtian_api::ApiOptions,
    /// Relay between the chains it hosts.
    relay: bool,
}

/// Launch the node (`tongtian_node::host::Node::launch`: main chain,
/// registry follower, sub-chains) with the API over every chain; run until
/// SIGINT/SIGTERM, then shut the node down and stop the API.
async fn serve_until_signal(
    runtime: std::sync::Arc<ChainRuntime>,
    network: Option<tongtian_network::Network>,
    listener: tokio::net::TcpListener,
    launch: Launch,
) -> Result<()> {
    let dir = tongtian_api::chains::ChainDirectory::new();
    dir.host(runtime.clone(), launch.api_options, true);
    let launched = tongtian_node::host::Node::launch(tongtian_node::host::LaunchConfig {
        home: launch.home,
        main: runtime.clone(),
        network,
        transport_key: launch.transport_key,
        keys: launch.keys,
        faults: launch.byzantine,
        observer: Some(dir.clone()),
        relay: launch.relay,
    })?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut router = tongtian_api::chains::directory_router(dir);
    if launch.fault_injection {
        router = router.merge(tongtian_api::fault_injection(runtime.clone()));
    }
    let api = tokio::spawn(tongtian_api::serve_router(listener, router, async {
        let _ = api_stopped.await;
    }));
    util::wait_for_signal().await;
    tracing::info!("shutting down");
    if let Err(e) = launched.shutdown().await {
        tracing::error!(error = %e, "engine did not stop cleanly");
    }
    let _ = stop_api.send(());
    // Open event streams keep graceful shutdown waiting; do not wait long.
    let _ = tokio::time::timeout(Duration::from_secs(2), api).await;
    Ok(())
}

async fn run_dev(args: DevArgs, json: bool) -> Result<()> {
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
    let unlocked = tongtian_api::accounts::UnlockedAccounts::dev();
    let keys_dir = args.data_dir.join("dev-keys");
    if json {
        // One line a script can read, then the node runs as usual.
        let banner = json!({
            "chain_id": chain.spec.chain_id,
            "suite": chain.spec.suite,
            "height": runtime.latest().0,
            "data_dir": args.data_dir.display().to_string(),
            "api": format!("http://{api_addr}"),
            "eth_rpc": format!("http://{api_addr}/eth"),
            "org": tongtian_node::dev::DEV_ORG,
            "admin_key": chain.admin_key.display().to_string(),
            "accounts": chain.dev_keys.iter().zip(&chain.spec.accounts).map(|(path, acct)| {
                json!({ "address": acct.address, "key_file": path.display().to_string() })
            }).collect::<Vec<_>>(),
            "eth_accounts": unlocked.keys().map(|(address, key)| {
                json!({ "address": address, "private_key": format!("0x{}", hex::encode(key.secret())) })
            }).collect::<Vec<_>>(),
        });
        println!("{banner}");
    } else {
        println!("Tongtian dev chain");
        println!("  chain id    {}", chain.spec.chain_id);
        println!("  suite       {}", chain.spec.suite);
        println!("  height      {}", runtime.latest().0);
        println!("  data dir    {}", args.data_dir.display());
        println!("  api         http://{api_addr}");
        if chain.admin_key.exists() {
            println!(
                "  org         {} (all the weight: its proposals pass at once), admin key {}",
                tongtian_node::dev::DEV_ORG,
                chain.admin_key.display()
            );
        }
        println!("  dev accounts (keys in {}):", keys_dir.display());
        for (path, acct) in chain.dev_keys.iter().zip(&chain.spec.accounts) {
            println!("    {}  {}", acct.address, path.display());
        }
        println!(
            "  Ethereum dev accounts (mnemonic \"{}\"), unlocked for eth_sendTransaction and eth_sign*:",
            tongtian_crypto::eth::DEV_MNEMONIC
        );
        for (address, key) in unlocked.keys() {
            println!("    {address}  key 0x{}", hex::encode(key.secret()));
        }
    }
    tracing::info!(api = %api_addr, "dev chain running");
    if args.agents > 0 {
        let (dir, keys, n) = (args.data_dir.clone(), chain.dev_keys.clone(), args.agents);
        tokio::spawn(async move {
            if let Err(e) = crate::dev_agents::start(api_addr, dir, keys, n, json).await {
                tracing::error!("party agents did not start: {e:#}");
            }
        });
    }
    let launch = Launch {
        home: args.data_dir.clone(),
        transport_key: chain.validator.public_key().to_vec(),
        keys: chain.validator_keys.clone(),
        fault_injection: false,
        byzantine: Default::default(),
        api_options: tongtian_api::ApiOptions {
            unlocked,
            ..Default::default()
        },
        // A dev node relays for its own sub-chains.
        relay: true,
    };
    serve_until_signal(runtime, None, listener, launch).await
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

/// `relay evm` (`relay`) or `attest evm`.
async fn evm_link(ctx: &util::Ctx, args: crate::EvmLinkArgs, relay: bool) -> Result<()> {
    let a = crate::evm_link::EvmArgs {
        evm: args.evm,
        channel: args.channel,
        key: load_key(&args.key, args.password.as_deref())?,
        eth_key: crate::evm_link::load_eth_key(&args.eth_key, args.password.as_deref())?,
        finality: args.finality,
        once: args.once,
    };
    crate::evm_link::run(ctx, a, relay).await
}
