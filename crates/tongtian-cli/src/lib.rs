//! The `tongtian` command line: argument definitions and command bodies.
//!
//! Every command that prints data takes `--json`; `--node` (default
//! `http://127.0.0.1:8645`) says which node to talk to.

pub mod bench;
mod commands;
mod testnet;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tongtian_crypto::SuiteId;

pub use commands::run;

/// Tongtian: consortium chains, a chain network, and data value without data movement.
#[derive(Debug, Parser)]
#[command(name = "tongtian", version, about)]
pub struct Cli {
    /// Node API to talk to.
    #[arg(long, global = true, env = "TONGTIAN_NODE", default_value = tongtian_client::DEFAULT_NODE)]
    pub node: String,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info,tongtian_node=debug`.
    #[arg(
        long,
        global = true,
        env = "TONGTIAN_LOG",
        default_value = "info,openraft=warn"
    )]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a single-node development chain with prefunded accounts.
    Dev(DevArgs),
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
    /// Benchmarks that print JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
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
    #[arg(long)]
    pub suite: Option<SuiteId>,
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
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD")]
        password: Option<String>,
    },
}

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
        #[arg(long, default_value = "standard")]
        suite: SuiteId,
        /// Directory to write.
        #[arg(long)]
        dir: PathBuf,
        /// Node i serves its API on base-port + i and its transport on base-port + 1000 + i.
        #[arg(long, default_value_t = 8645)]
        base_port: u16,
    },
    /// Start every node of DIR as child processes, with one merged log; Ctrl-C stops them all.
    Up {
        /// Directory written by `testnet init`.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// `tongtian key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a key file.
    New {
        /// Where to write it (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Crypto suite.
        #[arg(long, default_value = "standard")]
        suite: SuiteId,
        /// Encrypt with this password.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD")]
        password: Option<String>,
    },
    /// Show a key file's address, public key and suite.
    Show {
        /// The key file.
        file: PathBuf,
        /// Password of an encrypted key file.
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD")]
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
    /// Password of an encrypted key file.
    #[arg(long, env = "TONGTIAN_KEY_PASSWORD")]
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
    /// Wait for the receipt and print it.
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
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD")]
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
        #[arg(long, env = "TONGTIAN_KEY_PASSWORD")]
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
}

/// Set up `tracing` output on stderr.
pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
