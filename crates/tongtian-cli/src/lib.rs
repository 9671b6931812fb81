//! The `tongtian` command line: argument definitions and command bodies.
//!
//! Every command that prints data takes `--json`; `--node` (default
//! `http://127.0.0.1:8645`) says which node to talk to, and `--timeout`
//! how long one request to it may take. The command modules share
//! [`util`], which imports none of them.

pub mod bench;
mod chain;
pub mod chains_bench;
mod commands;
mod compute;
mod contract;
pub mod contract_bench;
mod data;
mod dev_agents;
mod evm_link;
mod gov;
pub mod lr_bench;
pub mod psi_bench;
mod relay;
pub mod secagg_bench;
pub mod stats_bench;
mod testnet;
pub mod util;
mod xchain;
pub mod xchain_bench;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tongtian_crypto::SuiteId;

pub use commands::run;

/// Tongtian: consortium chains, a chain network, and data value without data movement.
#[derive(Debug, Parser)]
#[command(
    name = "tongtian",
    version,
    about,
    after_help = "Examples:
  tongtian dev                                   start a dev chain on http://127.0.0.1:8645
  tongtian status                                what the node says of its chain
  tongtian transfer --key .tongtian-dev/dev-keys/dev-0.key --to 0x… --amount 5 --wait
  tongtian block show latest --json
  tongtian completions bash > /etc/bash_completion.d/tongtian"
)]
pub struct Cli {
    /// Node API to talk to (`http://` is assumed when no scheme is given).
    /// `relay start` takes several (the first serves the main chain); other
    /// commands use the first.
    #[arg(long, global = true, env = "TONGTIAN_NODE", default_value = tongtian_client::DEFAULT_NODE, action = clap::ArgAction::Append)]
    pub node: Vec<String>,
    /// Print machine-readable JSON (errors too, as `{"error": {"code", "message"}}` on stdout).
    #[arg(long, global = true)]
    pub json: bool,
    /// The chain to talk to, by name or chain id (default: the node's main
    /// chain); `tongtian chain list` shows the ones a node hosts.
    #[arg(long, global = true, env = "TONGTIAN_CHAIN")]
    pub chain: Option<String>,
    /// Seconds one request to the node may take before it is given up.
    #[arg(long, global = true, env = "TONGTIAN_TIMEOUT", default_value_t = 30)]
    pub timeout: u64,
    /// Seconds `--wait` waits for a transaction's receipt.
    #[arg(long, global = true, default_value_t = 60)]
    pub wait_timeout: u64,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `debug` or
    /// `info,tongtian_node=debug`; `testnet up` passes it to its nodes.
    #[arg(long, global = true, env = "TONGTIAN_LOG", default_value = DEFAULT_LOG)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The default log filter: the node's own notices and the warnings of
/// the libraries it runs on. openraft is left out: it warns and errs on
/// every contested election and every vote sent before the peers have
/// connected, which is how Raft works, not a fault (the engine reports
/// leadership and failures itself); `--log info,openraft=warn` shows it.
/// (A target matches every module path it begins, so `tongtian` covers
/// every `tongtian_*` crate.)
pub const DEFAULT_LOG: &str = "warn,tongtian=info,openraft=off";

/// Possible values of `--suite`.
pub fn suite_parser() -> impl clap::builder::TypedValueParser<Value = SuiteId> {
    clap::builder::PossibleValuesParser::new(["standard", "sm"]).try_map(|s| s.parse::<SuiteId>())
}

/// Possible values of `--vm`.
pub fn vm_parser() -> impl clap::builder::TypedValueParser<Value = tongtian_types::VmKind> {
    clap::builder::PossibleValuesParser::new(["wasm", "evm"])
        .try_map(|s| s.parse::<tongtian_types::VmKind>())
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a single-node development chain with prefunded accounts.
    #[command(after_help = "Examples:
  tongtian dev                       resume (or create) ./.tongtian-dev
  tongtian dev --suite sm            a new chain on SM2/SM3
  tongtian dev --data-dir /tmp/d --api 127.0.0.1:9000")]
    Dev(DevArgs),
    /// What the node says of its chain: id, height, engine, peers, pool.
    Status,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  tongtian completions bash > ~/.local/share/bash-completion/completions/tongtian"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Run one node of a consortium chain.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Create and run a local multi-node network.
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// Create and inspect key files.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Read accounts and prove them.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Send native tokens.
    #[command(after_help = "Examples:
  tongtian transfer --key alice.key --to 0x… --amount 1000 --wait
  tongtian transfer --key alice.key --to 0x… --amount 5 --nonce 7 --json")]
    Transfer(TransferArgs),
    /// Read blocks.
    #[command(subcommand)]
    Block(BlockCommand),
    /// Read transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Read and change the validator set.
    #[command(subcommand)]
    Validators(ValidatorsCommand),
    /// Deploy, call and read WASM and EVM contracts.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// The chains a node hosts.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// The organisations of the chain network.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Governance: proposals and votes of the organisations.
    #[command(subcommand)]
    Gov(GovCommand),
    /// Cross-chain: light clients, channels, packets, token transfers.
    #[command(subcommand)]
    Xchain(XchainCommand),
    /// Data assets: register (the file stays here), list, show, history,
    /// grant and revoke.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run a party agent beside a data owner's node.
    #[command(subcommand)]
    Party(PartyCommand),
    /// File a privacy job over data assets, pay for it, and wait for it.
    #[command(subcommand)]
    Compute(ComputeCommand),
    /// Privacy jobs: status, parties, events, payments.
    #[command(subcommand)]
    Job(JobCommand),
    /// Attest an external chain for an attested client.
    #[command(subcommand)]
    Attest(AttestCommand),
    /// Relay packets between the main chain and its linked sub-chains.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Benchmarks that print JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `tongtian chain ...`.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Every chain the node hosts: name, chain id, engine, suite,
    /// organisations, status, height.
    List,
    /// One chain, by name or chain id.
    Show {
        /// Name or chain id.
        chain: String,
    },
}

/// `tongtian xchain ...`.
#[derive(Debug, Subcommand)]
pub enum XchainCommand {
    /// The light clients a chain keeps of other chains (`--chain`).
    Clients,
    /// A chain's channels (`--chain`).
    Channels,
    /// Packets sent on a chain and not yet acknowledged or timed out.
    Packets {
        /// Only this channel (default: every channel of the chain).
        #[arg(long)]
        channel: Option<String>,
        /// Only pending ones (the only ones a chain keeps; accepted for
        /// clarity).
        #[arg(long)]
        pending: bool,
    },
    /// Send tokens from one chain to another over their transfer channel.
    #[command(
        after_help = "Example:\n  tongtian xchain transfer --from-chain main --to-chain trade --to 0x... --amount 100 --key dev-0.key --wait"
    )]
    Transfer {
        /// The chain the tokens leave (name or id; `main` for the main chain).
        #[arg(long)]
        from_chain: String,
        /// The chain they go to.
        #[arg(long)]
        to_chain: String,
        /// The receiver there.
        #[arg(long)]
        to: String,
        /// How much.
        #[arg(long)]
        amount: u128,
        /// Which token (`native`, or a voucher's denomination).
        #[arg(long, default_value = "native")]
        denom: String,
        /// Blocks of the destination after which the packet times out.
        #[arg(long, default_value_t = 1_000)]
        timeout_blocks: u64,
        /// The channel to send on (default: the one whose client follows
        /// the destination; through the main chain between sub-chains).
        #[arg(long)]
        channel: Option<String>,
        /// Follow the packet until it is acknowledged or timed out
        /// (relayed by a node with `--relay`, `tongtian dev`, or `tongtian
        /// relay start`), and print how it ended.
        #[arg(long)]
        wait: bool,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Propose a channel to another chain (no vote: IBC's handshake, which
    /// the relayers carry on, each step proven by the other chain's
    /// client). Anyone may propose one on `transfer` and `nft-transfer`; a
    /// contract's port takes its owner only. Prints the new end's id.
    #[command(
        after_help = "Example:\n  tongtian xchain open-channel --from-chain trade --to-chain trace --key k.key"
    )]
    OpenChannel {
        /// The chain that proposes it.
        #[arg(long)]
        from_chain: String,
        /// The other chain (by the proposing chain's client of it).
        #[arg(long)]
        to_chain: String,
        /// The port here.
        #[arg(long, default_value = "transfer")]
        port: String,
        /// The port there.
        #[arg(long, default_value = "transfer")]
        counterparty_port: String,
        /// Deliver packets in sequence only.
        #[arg(long)]
        ordered: bool,
        /// The application's version string.
        #[arg(long, default_value = "ics20-1")]
        version: String,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Send NFTs of one class from one chain to another.
    #[command(
        after_help = "Example:\n  tongtian xchain nft-transfer --from-chain main --to-chain trade --class bills --id b1 --to 0x... --key k.key --wait"
    )]
    NftTransfer {
        /// The chain they leave.
        #[arg(long)]
        from_chain: String,
        /// The chain they go to.
        #[arg(long)]
        to_chain: String,
        /// The receiver there.
        #[arg(long)]
        to: String,
        /// Their class (a voucher class to send them back).
        #[arg(long)]
        class: String,
        /// Token ids (repeat, or comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        id: Vec<String>,
        /// Blocks of the destination after which the packet times out.
        #[arg(long, default_value_t = 1_000)]
        timeout_blocks: u64,
        /// Follow the packet until it is acknowledged or timed out.
        #[arg(long)]
        wait: bool,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Non-fungible tokens on a chain (`--chain`).
    #[command(subcommand)]
    Nft(NftCommand),
    /// An address's balances on a chain: native and vouchers.
    Balances {
        /// The address.
        address: String,
    },
    /// Evidence of a client's misbehaviour.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

/// `tongtian xchain nft ...`.
#[derive(Debug, Subcommand)]
pub enum NftCommand {
    /// Create a class; the signer becomes the only one who mints in it.
    CreateClass {
        /// Its id (no `/`).
        #[arg(long)]
        class: String,
        /// Its URI.
        #[arg(long, default_value = "")]
        uri: String,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Mint a token in a class the signer created.
    Mint {
        /// The class.
        #[arg(long)]
        class: String,
        /// The token's id.
        #[arg(long)]
        id: String,
        /// Its URI.
        #[arg(long, default_value = "")]
        uri: String,
        /// Its metadata, hex.
        #[arg(long, default_value = "")]
        data: String,
        /// Its first owner (default: the signer).
        #[arg(long)]
        owner: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// The tokens an address owns.
    Owned {
        /// The address.
        address: String,
    },
}

/// `tongtian relay ...`.
#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Relay until stopped (SIGINT/SIGTERM), printing progress (as JSON
    /// lines with `--json`). Give `--node` once per node to reach: the
    /// first serves the main chain, each sub-chain is reached through a
    /// node that hosts it.
    #[command(
        after_help = "Example:\n  tongtian relay start --node http://127.0.0.1:8745 --node http://127.0.0.1:8746 --key relayer.key --key relayer-sm.key"
    )]
    Start {
        /// Signing keys, one per crypto suite of the chains relayed (a
        /// validator key relays for free; others pay fees).
        #[arg(long, required = true)]
        key: Vec<PathBuf>,
        /// Password of encrypted keys.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Only these sub-chains (comma-separated; default: every linked one).
        #[arg(long, value_delimiter = ',')]
        chains: Option<Vec<String>>,
        /// One pass over every link, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Relay between a chain (`--chain`) and an external EVM chain's port
    /// contract over channel `--channel`: EVM packets in with
    /// `eth_getProof` proofs, ours out with the attesters' signatures the
    /// chain keeps (see `tongtian attest evm`).
    #[command(
        after_help = "Example:\n  tongtian relay evm --evm http://127.0.0.1:8545 --channel channel-e --key relayer.key --eth-key relayer-eth.key"
    )]
    Evm(EvmLinkArgs),
}

/// `tongtian data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Register a CSV file as a data asset: the schema, row count and a
    /// salted Merkle root over its rows are computed here and go on chain;
    /// the rows and the salt (written beside the file as `FILE.salt`) stay.
    #[command(
        after_help = "Example:\n  tongtian data register --name customers --file customers.csv --key-column id --price 10 --agent 127.0.0.1:9700 --key owner.key --json"
    )]
    Register {
        /// The asset's name.
        #[arg(long)]
        name: String,
        /// The CSV file (with a header row).
        #[arg(long)]
        file: PathBuf,
        /// The column jobs join on (it must exist).
        #[arg(long)]
        key_column: String,
        /// Price per job.
        #[arg(long)]
        price: u128,
        /// The owner's party agent (`host:port`).
        #[arg(long)]
        agent: String,
        /// Signer and gas (the key is also the agent's party key).
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Every asset.
    List,
    /// One asset.
    Show {
        /// Its id.
        id: u64,
    },
    /// An asset's history: registration, grants, jobs.
    History {
        /// Its id.
        id: u64,
    },
    /// Grant an account the use of an asset.
    Grant {
        /// The asset.
        id: u64,
        /// Who.
        #[arg(long)]
        to: String,
        /// Which protocols (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        protocols: Vec<String>,
        /// Which columns (comma-separated; default all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// The last block it can be used in (default: no end).
        #[arg(long, default_value_t = 0)]
        until: u64,
        /// How many jobs (default: unlimited).
        #[arg(long, default_value_t = 0)]
        uses: u32,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Revoke a grant.
    Revoke {
        /// The asset.
        id: u64,
        /// The grant.
        #[arg(long)]
        grant: u64,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// A Merkle proof that row N of the file (with its salt beside it) is
    /// in the asset as committed on chain (for audits; it reveals the row
    /// and the salt).
    #[command(
        after_help = "Example:\n  tongtian data prove 1 --row 0 --file customers.csv --json"
    )]
    Prove {
        /// The asset.
        id: u64,
        /// The row (from 0).
        #[arg(long)]
        row: u64,
        /// The asset's file (its salt is read from FILE.salt); default: the
        /// CSV file under the current directory (five levels deep, with a
        /// salt beside it) whose salted root is the asset's commitment.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

/// `tongtian party ...`.
#[derive(Debug, Subcommand)]
pub enum PartyCommand {
    /// Serve as a data owner's party agent until SIGINT or SIGTERM: hold
    /// the CSV files of DIR/data (each with its FILE.salt, as `data
    /// register` leaves them), accept granted jobs over them, run their
    /// protocols with the other agents, write outputs to DIR/results.
    #[command(
        after_help = "Example:\n  tongtian party serve --home ./agent --key owner.key --node http://127.0.0.1:8645 --listen 127.0.0.1:7701"
    )]
    Serve {
        /// The agent's home (data/ and results/ in it).
        #[arg(long)]
        home: PathBuf,
        /// The agent's key: the one its assets name (their owner's, as
        /// `data register --key` records it).
        #[arg(long)]
        key: PathBuf,
        /// Password of an encrypted key.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Where it takes sessions (the address its assets registered).
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: SocketAddr,
        /// Seconds any wait for another party may last.
        #[arg(long, default_value_t = 60)]
        session_timeout: u64,
    },
}

/// `tongtian compute ...`.
#[derive(Debug, Subcommand)]
pub enum ComputeCommand {
    /// Private set intersection of two assets on a key column: the first
    /// asset's agent receives the output, the second's learns only the
    /// first set's size.
    #[command(
        after_help = "Example:\n  tongtian compute psi --assets 1,2 --key-column id --output-to 0x... --pay 100 --key dev-2.key --wait --json"
    )]
    Psi {
        /// The assets (the receiver's first).
        #[arg(long, value_delimiter = ',', required = true)]
        assets: Vec<u64>,
        /// The protocol.
        #[arg(long, default_value = "psi-ecdh", value_parser = ["psi-ecdh", "psi-ot"])]
        protocol: String,
        /// The column to join on.
        #[arg(long)]
        key_column: String,
        /// Who receives the output (default: the signer).
        #[arg(long)]
        output_to: Option<String>,
        /// Reveal only the intersection's size.
        #[arg(long)]
        cardinality: bool,
        /// The payment held in escrow (at least the assets' prices).
        #[arg(long)]
        pay: u128,
        /// Blocks until the job may be aborted and its escrow refunded.
        #[arg(long, default_value_t = 120)]
        timeout_blocks: u64,
        /// Follow the job until it completes or aborts (aborting it once
        /// its timeout passed); with the output account's key, fetch the
        /// output from the receiving agent and check it against the chain.
        #[arg(long)]
        wait: bool,
        /// Write the fetched output here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Vertical logistic regression: features in three assets, the label
    /// in the first; the model and its held-out accuracy go to the output
    /// account only (the model into the first asset's agent's results/).
    #[command(
        after_help = "Example:\n  tongtian compute lr --assets 1,2,3 --key-column id --label churned --epochs 20 --holdout 0.2 --pay 30 --key dev-3.key --wait --json"
    )]
    Lr {
        /// The three assets (the label's first).
        #[arg(long, value_delimiter = ',', required = true)]
        assets: Vec<u64>,
        /// The column the rows are matched on.
        #[arg(long)]
        key_column: String,
        /// The label column (0 or 1).
        #[arg(long)]
        label: String,
        /// The feature columns (default: every numeric column but the key
        /// and the label).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Passes over the training rows.
        #[arg(long, default_value_t = 10)]
        epochs: u32,
        /// The step size.
        #[arg(long, default_value_t = 0.5)]
        learning_rate: f64,
        /// The fraction of rows held out to measure accuracy.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// Who receives the model (default: the signer).
        #[arg(long)]
        output_to: Option<String>,
        /// The payment held in escrow.
        #[arg(long)]
        pay: u128,
        /// Blocks until the job may be aborted.
        #[arg(long, default_value_t = 120)]
        timeout_blocks: u64,
        /// Follow the job until it ends, and fetch the model.
        #[arg(long)]
        wait: bool,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Horizontal federated learning: every asset has the same columns;
    /// each owner's agent trains locally and the first asset's agent
    /// aggregates by secure aggregation; every round's participants and
    /// model commitment go on chain; the model to the output account.
    #[command(
        after_help = "Example:\n  tongtian compute fl --assets 1,2,3,4,5 --key-column id --label y --model logistic --rounds 10 --min-clients 3 --pay 50 --key dev-9.key --wait --json"
    )]
    Fl {
        /// The assets (three or more; the first one's agent aggregates).
        #[arg(long, value_delimiter = ',', required = true)]
        assets: Vec<u64>,
        /// The row key (for each party's holdout split).
        #[arg(long)]
        key_column: String,
        /// The label column (0 or 1).
        #[arg(long)]
        label: String,
        /// The feature columns (default: every numeric column of the first
        /// asset but the key and the label).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// The model: `logistic` regression, or `mlp`, a perceptron with
        /// one hidden layer of `--hidden` tanh units.
        #[arg(long, default_value = "logistic", value_parser = ["logistic", "mlp"])]
        model: String,
        /// Hidden units of the `mlp`.
        #[arg(long, default_value_t = 16)]
        hidden: usize,
        /// Rounds.
        #[arg(long, default_value_t = 10)]
        rounds: u32,
        /// Clients a round needs (at least a majority).
        #[arg(long, default_value_t = 0)]
        min_clients: usize,
        /// Local epochs per round.
        #[arg(long, default_value_t = 1)]
        epochs: u32,
        /// The local step size.
        #[arg(long, default_value_t = 0.1)]
        learning_rate: f64,
        /// The fraction of each party's rows held out (the aggregator
        /// measures accuracy on its own).
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// Who receives the model (default: the signer).
        #[arg(long)]
        output_to: Option<String>,
        /// The payment held in escrow.
        #[arg(long)]
        pay: u128,
        /// Blocks until the job may be aborted.
        #[arg(long, default_value_t = 120)]
        timeout_blocks: u64,
        /// Follow the job until it ends, and fetch the model.
        #[arg(long)]
        wait: bool,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Joint statistics of columns held by three assets' owners, on the
    /// secret-sharing engine: rows matched on the key column, only the
    /// job's output account learns the result (fetched from the first
    /// asset's agent).
    #[command(
        after_help = "Example:\n  tongtian compute stats --assets 1,2,3 --key-column id --columns age,income,spend --ops mean,variance,corr --pay 30 --key dev-3.key --wait --json"
    )]
    Stats {
        /// The three assets (the first one's agent receives the output).
        #[arg(long, value_delimiter = ',', required = true)]
        assets: Vec<u64>,
        /// The column the rows are matched on.
        #[arg(long)]
        key_column: String,
        /// The numeric columns (each one asset's).
        #[arg(long, value_delimiter = ',', required = true)]
        columns: Vec<String>,
        /// Which statistics: `count`, `sum`, `mean`, `variance`, `corr`
        /// (every pair of the columns), `min`, `max`, `histogram` (with
        /// `--bins`); default: all.
        #[arg(long, value_delimiter = ',')]
        ops: Vec<String>,
        /// Histogram bin edges, ascending (`--ops histogram`).
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        bins: Vec<f64>,
        /// Who receives the output (default: the signer).
        #[arg(long)]
        output_to: Option<String>,
        /// The payment held in escrow.
        #[arg(long)]
        pay: u128,
        /// Blocks until the job may be aborted.
        #[arg(long, default_value_t = 120)]
        timeout_blocks: u64,
        /// Follow the job until it ends, and fetch the result.
        #[arg(long)]
        wait: bool,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
}

/// `tongtian job ...`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Jobs of the chain.
    List {
        /// Only these statuses (`open,running,completed,aborted`).
        #[arg(long)]
        status: Option<String>,
    },
    /// One job: status, parties, every event, the payments.
    Show {
        /// The job.
        id: u64,
    },
    /// Abort a job past its timeout block (anyone): the escrow goes back.
    Abort {
        /// The job.
        id: u64,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
}

/// `tongtian attest ...`.
#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Attest an external EVM chain for a chain's attested client (run one
    /// per attester organisation, against its own EVM node): sign blocks
    /// `--finality` behind the head, our packets to the port and our acks
    /// of its packets, each posted on our chain.
    #[command(
        after_help = "Example:\n  tongtian attest evm --evm http://127.0.0.1:8545 --channel channel-e --key org-a.key --eth-key attester-a.key --finality 2"
    )]
    Evm(EvmLinkArgs),
}

/// The link to an external EVM chain, as `relay evm` and `attest evm` take it.
#[derive(Args, Debug)]
pub struct EvmLinkArgs {
    /// The EVM chain's JSON-RPC URL.
    #[arg(long)]
    pub evm: String,
    /// Our channel to its port contract.
    #[arg(long)]
    pub channel: String,
    /// Our chain's key (pays the fees).
    #[arg(long)]
    pub key: PathBuf,
    /// The Ethereum key (`tongtian key import --eth`): the attester's, or
    /// the relayer's that pays EVM gas.
    #[arg(long)]
    pub eth_key: PathBuf,
    /// Password of encrypted keys.
    #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Blocks behind the EVM head an attester signs (its finality depth).
    #[arg(long, default_value_t = 0)]
    pub finality: u64,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
}

/// `tongtian xchain evidence ...`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Submit two conflicting certified headers (JSON: `{"client", "a",
    /// "b"}`, each `{"header", "certificate"}`) to the chain (`--chain`);
    /// valid evidence freezes the client.
    Submit {
        /// The evidence file.
        file: PathBuf,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
}

/// `tongtian org ...`.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Every organisation: id, name, admin, weight, nodes.
    List,
    /// One organisation.
    Show {
        /// Its id (e.g. org-1).
        id: String,
    },
    /// Register your organisation's nodes (replacing the list): each node
    /// home's `node.key` (its transport key) and `validator-*.key` files
    /// (its keys for sub-chains of each suite). Signed by the admin.
    #[command(after_help = "Example:
  tongtian org set-nodes org-4 --home ./net/node-4 --key ./net/orgs/org-4/admin.key")]
    SetNodes {
        /// Its id.
        id: String,
        /// A node home (repeatable).
        #[arg(long, required = true)]
        home: Vec<PathBuf>,
        /// Signer (the organisation's admin key) and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
}

/// `tongtian gov ...`.
#[derive(Debug, Subcommand)]
pub enum GovCommand {
    /// File a proposal; your organisation counts as voting yes.
    #[command(subcommand)]
    Propose(ProposeCommand),
    /// Vote on an open proposal as your organisation's admin (exits
    /// non-zero when the vote is refused).
    #[command(after_help = "Example:
  tongtian gov vote 1 yes --key testnet/orgs/org-1/admin.key")]
    Vote {
        /// The proposal id.
        id: u64,
        /// yes, no or abstain.
        #[arg(value_parser = ["yes", "no", "abstain"])]
        choice: String,
        /// Signer (the organisation's admin key) and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// One proposal: kind, status (open, passed, rejected, executed), votes and tally.
    Show {
        /// The proposal id.
        id: u64,
    },
    /// Every proposal.
    List {
        /// Only the open ones.
        #[arg(long)]
        open: bool,
    },
}

/// The kinds of proposal.
#[derive(Debug, Subcommand)]
pub enum ProposeCommand {
    /// Create a business sub-chain run by the named organisations' nodes.
    #[command(after_help = "Example:
  tongtian gov propose create-chain --name trade --engine bft --suite sm \\
      --orgs org-1,org-2,org-3 --fund 0xabc…=1000000 --key testnet/orgs/org-0/admin.key")]
    CreateChain {
        /// Its name (a-z, 0-9, -).
        #[arg(long)]
        name: String,
        /// Consensus engine.
        #[arg(long, value_parser = ["solo", "raft", "bft"])]
        engine: String,
        /// Crypto suite.
        #[arg(long, default_value = "standard", value_parser = suite_parser())]
        suite: SuiteId,
        /// Member organisations, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        orgs: Vec<String>,
        /// VMs, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "wasm,evm", value_parser = vm_parser())]
        vms: Vec<tongtian_types::VmKind>,
        /// Fund an account in its genesis: ADDRESS=AMOUNT (repeatable).
        #[arg(long)]
        fund: Vec<String>,
        /// Its chain id (default: the next free one after the main chain's).
        #[arg(long)]
        chain_id: Option<u64>,
        /// Only funded accounts and the members' admins may send transactions.
        #[arg(long)]
        restricted: bool,
        /// Signer (an organisation admin's key) and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Stop a sub-chain (its nodes stop it and keep its data).
    StopChain {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Admit an organisation.
    AddOrg {
        /// Its id.
        #[arg(long)]
        id: String,
        /// Its name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// Its admin account (0x address).
        #[arg(long)]
        admin: String,
        /// Its voting weight.
        #[arg(long, default_value_t = 1)]
        weight: u64,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Remove an organisation.
    RemoveOrg {
        /// Its id.
        #[arg(long)]
        id: String,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Freeze a contract: no transaction may call it.
    FreezeContract {
        /// Its address.
        #[arg(long)]
        address: String,
        /// The sub-chain it is on (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Unfreeze a contract.
    UnfreezeContract {
        /// Its address.
        #[arg(long)]
        address: String,
        /// The sub-chain it is on (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Replace a contract's code in place (same address, storage and
    /// balance): a WASM module for a WASM contract, runtime bytecode (hex)
    /// for an EVM one.
    #[command(
        after_help = "Example:\n  tongtian gov propose upgrade-contract --address 0x... --code token-v2.wasm --key admin.key"
    )]
    UpgradeContract {
        /// Its address.
        #[arg(long)]
        address: String,
        /// File with the new code (WASM binary, or EVM runtime code in hex).
        #[arg(long, value_name = "FILE")]
        code: std::path::PathBuf,
        /// The sub-chain it is on (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Lift the freeze of a light client (after its misbehaviour was
    /// dealt with).
    UnfreezeClient {
        /// The client's id (e.g. `trade` on the main chain, `main` on a sub-chain).
        #[arg(long)]
        client: String,
        /// The sub-chain that keeps it (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Open a channel between two chains of the network (a direct one
    /// between two sub-chains included): both ends get `channel-p{N}`, N
    /// the proposal's id, with clients of each other made as needed.
    #[command(
        after_help = "Example:\n  tongtian gov propose open-channel --a-chain trade --a-port transfer --b-chain trace --b-port transfer --key admin.key"
    )]
    OpenChannel {
        /// One end's chain (`main` for the main chain).
        #[arg(long, value_name = "CHAIN")]
        a_chain: String,
        /// Its port: a module (`transfer`, `nft-transfer`) or a contract address.
        #[arg(long, value_name = "PORT", default_value = "transfer")]
        a_port: String,
        /// The other end's chain.
        #[arg(long, value_name = "CHAIN")]
        b_chain: String,
        /// Its port.
        #[arg(long, value_name = "PORT", default_value = "transfer")]
        b_port: String,
        /// Deliver packets in sequence only.
        #[arg(long)]
        ordered: bool,
        /// The application's version string.
        #[arg(long, default_value = "")]
        version: String,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Connect a chain to an external EVM chain through an attested client
    /// (a threshold of named attesters sign its blocks) and a channel to
    /// its port contract (`contracts/evm-port/TongtianPort.sol`).
    #[command(
        after_help = "Example:\n  tongtian gov propose connect-evm --client anvil --evm-chain-id 31337 --attesters 0xA..,0xB..,0xC.. --threshold 2 --channel channel-e --counterparty-channel channel-0 --counterparty-port 0xPORT --key admin.key"
    )]
    ConnectEvm {
        /// The client's id here (e.g. `anvil`).
        #[arg(long)]
        client: String,
        /// The EVM chain's id (EIP-155).
        #[arg(long)]
        evm_chain_id: u64,
        /// The attesters' Ethereum addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        attesters: Vec<String>,
        /// How many attesters must sign a block.
        #[arg(long)]
        threshold: u32,
        /// The channel id here.
        #[arg(long)]
        channel: String,
        /// The port here.
        #[arg(long, default_value = "transfer")]
        port: String,
        /// The port contract's channel id.
        #[arg(long)]
        counterparty_channel: String,
        /// The port contract's address.
        #[arg(long)]
        counterparty_port: String,
        /// The sub-chain to connect (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Restart the trusting period of an expired light client.
    ReviveClient {
        /// The client's id.
        #[arg(long)]
        client: String,
        /// The sub-chain that keeps it (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Change a chain parameter while it runs.
    #[command(
        after_help = "Parameters: min_gas_price, max_tx_gas, max_tx_bytes\n\nExample:\n  tongtian gov propose set-param --name min_gas_price --value 2 --target trade --key admin.key"
    )]
    SetParam {
        /// The parameter.
        #[arg(long, value_parser = ["min_gas_price", "max_tx_gas", "max_tx_bytes"])]
        name: String,
        /// Its new value.
        #[arg(long)]
        value: u64,
        /// The sub-chain (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Replace a chain's validator set.
    #[command(
        after_help = "Example:\n  tongtian gov propose set-validators --nodes org-1/node1,org-2/node2,org-3/node3 --target trade --key admin.key"
    )]
    SetValidators {
        /// The validating nodes, ORG/NODE, comma-separated (each with the
        /// key its organisation registered for the chain's suite).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// The sub-chain (default: the main chain).
        #[arg(long, value_name = "CHAIN")]
        target: Option<String>,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Change an organisation's voting weight.
    SetWeight {
        /// Its id.
        #[arg(long)]
        id: String,
        /// The new weight.
        #[arg(long)]
        weight: u64,
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
    },
}

/// Who signs a transaction and what it may spend on gas.
#[derive(Args, Debug, Clone)]
pub struct SignerArgs {
    /// Sender's key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Password of an encrypted key file (asked for on a terminal when not given).
    #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Gas limit.
    #[arg(long, default_value_t = 10_000_000)]
    pub gas_limit: u64,
    /// Gas price.
    #[arg(long, default_value_t = 1)]
    pub gas_price: u64,
}

/// How a contract call is spelled: method, JSON arguments, and for EVM
/// contracts the ABI that encodes them.
#[derive(Args, Debug, Clone)]
pub struct CallSpec {
    /// The contract's address.
    #[arg(long)]
    pub address: String,
    /// Method (function) name.
    #[arg(long)]
    pub method: String,
    /// Arguments as a JSON array, e.g. `["0xab..", 100]`.
    #[arg(long, default_value = "[]")]
    pub args: String,
    /// Solidity ABI file (`.abi`); required for EVM contracts, which it
    /// marks as such.
    #[arg(long)]
    pub abi: Option<PathBuf>,
}

/// `tongtian contract ...`.
#[derive(Subcommand, Debug)]
pub enum ContractCommand {
    /// Deploy a contract and print its address.
    Deploy {
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
        /// A WASM module (`.wasm`).
        #[arg(long, conflicts_with = "evm", required_unless_present = "evm")]
        wasm: Option<PathBuf>,
        /// EVM init code, hex (solc's `.bin`) or raw bytes.
        #[arg(long)]
        evm: Option<PathBuf>,
        /// Solidity ABI, to encode constructor arguments.
        #[arg(long)]
        abi: Option<PathBuf>,
        /// Constructor (EVM) or `deploy` (WASM) arguments, a JSON array.
        #[arg(long, default_value = "[]")]
        args: String,
        /// Native tokens sent to the new contract.
        #[arg(long, default_value_t = 0)]
        value: u128,
    },
    /// Send a transaction calling a contract.
    Call {
        /// Signer and gas.
        #[command(flatten)]
        signer: SignerArgs,
        /// What to call.
        #[command(flatten)]
        spec: CallSpec,
        /// Native tokens sent with the call.
        #[arg(long, default_value_t = 0)]
        value: u128,
        /// Wait for the receipt, print it with the decoded output, and fail
        /// if the call failed.
        #[arg(long)]
        wait: bool,
        /// Send without first running the call read-only (by default a
        /// call that would fail is refused before it is signed).
        #[arg(long)]
        no_dry_run: bool,
    },
    /// Call a contract read-only (nothing is signed or kept).
    Query {
        /// What to call.
        #[command(flatten)]
        spec: CallSpec,
        /// Caller address the contract sees.
        #[arg(long)]
        from: Option<String>,
    },
    /// List a contract's events.
    Events {
        /// The contract's address.
        #[arg(long)]
        address: String,
        /// First height.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last height (default: 999 blocks after `--from`).
        #[arg(long)]
        to: Option<u64>,
    },
}

/// `tongtian dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Data directory (created on first start, resumed later).
    #[arg(long, default_value = ".tongtian-dev")]
    pub data_dir: PathBuf,
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:8645")]
    pub api: SocketAddr,
    /// Crypto suite of a new chain (must match an existing one).
    #[arg(long, value_parser = suite_parser())]
    pub suite: Option<SuiteId>,
    /// Also start this many party agents (dev accounts 0.., homes in
    /// DATA_DIR/agents/agent-i, sessions on the API port + 100 + i), each
    /// with a sample dataset registered as an asset and granted to the
    /// other dev accounts for PSI.
    #[arg(long, default_value_t = 0)]
    pub agents: usize,
}

/// `tongtian node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node in the foreground until SIGINT or SIGTERM.
    Start {
        /// Node home (holds config.toml, node.key, chain-spec.json, data/).
        #[arg(long)]
        home: PathBuf,
        /// Password of an encrypted node key.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Also relay packets between the main chain and the sub-chains
        /// this node hosts (signing with its validator keys: free).
        #[arg(long)]
        relay: bool,
    },
}

/// `testnet init`'s default base port: node i's API on 8745 + i, its
/// transport on 9745 + i.
pub const TESTNET_BASE_PORT: u16 = 8745;

/// `tongtian testnet ...`.
#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Write node homes DIR/node-0 .. DIR/node-{N-1} and DIR/dev-keys.
    Init {
        /// Number of nodes (all validators).
        #[arg(long)]
        nodes: usize,
        /// Consensus engine.
        #[arg(long, value_parser = ["bft", "raft"])]
        consensus: String,
        /// Crypto suite.
        #[arg(long, default_value = "standard", value_parser = suite_parser())]
        suite: SuiteId,
        /// Directory to write.
        #[arg(long)]
        dir: PathBuf,
        /// Node i serves its API on base-port + i and its transport on
        /// base-port + 1000 + i (the default stays clear of `tongtian dev`'s 8645).
        #[arg(long, default_value_t = TESTNET_BASE_PORT)]
        base_port: u16,
        /// Founding organisations `org-0` .. (default one per node; node i
        /// belongs to org-(i mod M)); admin keys in DIR/orgs/ORG/admin.key.
        #[arg(long)]
        orgs: Option<usize>,
    },
    /// Start every node of DIR as child processes, with one merged log; Ctrl-C stops them all.
    Up {
        /// Directory written by `testnet init`.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Where and how `key new` and `key import` write a key file.
#[derive(Args, Debug)]
pub struct KeyOut {
    /// Where to write it (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Crypto suite the key is for.
    #[arg(long, default_value = "standard", value_parser = suite_parser())]
    pub suite: SuiteId,
    /// An Ethereum account key (secp256k1) instead, such as a Hardhat or
    /// MetaMask account: its address is the Ethereum one, and it signs
    /// `transfer`s as Ethereum transactions.
    #[arg(long, conflicts_with = "suite")]
    pub eth: bool,
    /// Encrypt it, with a password asked for on the terminal (or
    /// TONGTIAN_KEY_PASSWORD).
    #[arg(long)]
    pub encrypt: bool,
    /// Encrypt with this password (prefer --encrypt: a password on the
    /// command line stays in the shell's history).
    #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// `tongtian key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a key file.
    #[command(after_help = "Examples:
  tongtian key new --out alice.key
  tongtian key new --out bob.key --suite sm --encrypt   (asks for a password)")]
    New(KeyOut),
    /// Write a key file for an existing private key (32 bytes of hex),
    /// read from standard input or asked for on a terminal.
    #[command(after_help = "Example:
  echo 0x59c6…690d | tongtian key import --out carol.key
  echo 0xac09…ff80 | tongtian key import --eth --out hardhat0.key   (Hardhat account 0)")]
    Import(KeyOut),
    /// Show a key file's address, public key and suite.
    Show {
        /// The key file.
        file: PathBuf,
        /// Password of an encrypted key file (asked for on a terminal when not given).
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

/// `tongtian account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Balance and nonce.
    Show {
        /// 0x address.
        address: String,
    },
    /// The account with its Merkle proof, verified against a block header.
    Prove {
        /// 0x address.
        address: String,
        /// Height to prove at (default latest).
        #[arg(long)]
        height: Option<u64>,
        /// Trusted chain spec: check the header's certificate against its validators.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
}

/// `tongtian transfer`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Sender's key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Password of an encrypted key file (asked for on a terminal when not given).
    #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Recipient address.
    #[arg(long)]
    pub to: String,
    /// Amount in the smallest unit.
    #[arg(long)]
    pub amount: u128,
    /// Memo text.
    #[arg(long, default_value = "")]
    pub memo: String,
    /// Nonce (default: the account's next, counting pending transactions).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Gas limit.
    #[arg(long, default_value_t = 100_000)]
    pub gas_limit: u64,
    /// Gas price.
    #[arg(long, default_value_t = 1)]
    pub gas_price: u64,
    /// Wait for the receipt and print it (on a terminal, with what the
    /// node says of the transaction meanwhile).
    #[arg(long)]
    pub wait: bool,
}

/// `tongtian block ...`.
#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Show a block by height, hash, or `latest`.
    Show {
        /// Height, 0x hash, or `latest`.
        #[arg(default_value = "latest")]
        id: String,
    },
}

/// `tongtian tx ...`.
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Show a transaction and its receipt.
    Show {
        /// 0x hash.
        hash: String,
    },
}

/// `tongtian validators ...`.
#[derive(Debug, Subcommand)]
pub enum ValidatorsCommand {
    /// The current set and its version.
    Show,
    /// As a current validator, sign a proposed new set (prints the approval as JSON).
    Approve {
        /// The validator's key file.
        #[arg(long)]
        key: PathBuf,
        /// Password of an encrypted key file.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// JSON file: `[{"name": "...", "public_key": "0x..."}, ...]`.
        #[arg(long)]
        set: PathBuf,
    },
    /// Submit the new set with the collected approvals.
    Propose {
        /// Any funded account's key file (pays the fee).
        #[arg(long)]
        key: PathBuf,
        /// Password of an encrypted key file.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// JSON file of the new set, as for `approve`.
        #[arg(long)]
        set: PathBuf,
        /// Approval files printed by `approve`.
        #[arg(long, value_delimiter = ',')]
        approvals: Vec<PathBuf>,
        /// Wait for the receipt.
        #[arg(long)]
        wait: bool,
    },
}

/// `tongtian bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// End-to-end signed transfers through the API.
    Transfers(bench::TransferBenchArgs),
    /// ERC-20-style token transfers on the WASM VM or the EVM, end to end
    /// and VM-only.
    Contracts(contract_bench::ContractBenchArgs),
    /// Transfers into K chains of the same nodes at once (the main chain
    /// and sub-chains bench-1.., voted in when missing).
    #[command(after_help = "Example:
  tongtian testnet init --nodes 4 --consensus bft --dir tn && tongtian testnet up --dir tn &
  tongtian bench chains --nodes http://127.0.0.1:8745,http://127.0.0.1:8746,http://127.0.0.1:8747,http://127.0.0.1:8748 \\
      --chains 2 --dir tn --json")]
    Chains(chains_bench::ChainsBenchArgs),
    /// Token transfers from the main chain to a sub-chain of a dev node,
    /// relayed by the node: packets/s, send-to-ack latency, recv cost,
    /// light-client update check time.
    Xchain(xchain_bench::XchainBenchArgs),
    /// Private set intersection between two parties over a real session on
    /// 127.0.0.1 (half of the keys shared), beside a plaintext hash join.
    Psi(psi_bench::PsiBenchArgs),
    /// Mean, variance and correlations of columns held by three parties,
    /// on the secret-sharing engine over real sessions on 127.0.0.1.
    Stats(stats_bench::StatsBenchArgs),
    /// Vertical logistic regression among three parties on the
    /// secret-sharing engine, beside central training.
    Lr(lr_bench::LrBenchArgs),
    /// A federated-averaging round with secure aggregation beside the same
    /// round in the clear.
    Secagg(secagg_bench::SecAggBenchArgs),
}

/// Set up `tracing` output on stderr.
pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|e| {
        eprintln!(
            "warning: --log {:?} is not a log filter ({e}); using the default",
            cli.log
        );
        tracing_subscriber::EnvFilter::new(DEFAULT_LOG)
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
