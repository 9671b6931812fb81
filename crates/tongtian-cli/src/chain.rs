//! `tongtian chain ...`: the chains a node hosts.

use crate::util::{print, Ctx};
use crate::ChainCommand;
use anyhow::Result;

/// Run a `chain` command.
pub async fn run(ctx: &Ctx, cmd: ChainCommand) -> Result<()> {
    match cmd {
        ChainCommand::List => {
            let chains = ctx.client.chains().await?;
            print(ctx.json, &chains, || {
                let mut text = format!(
                    "{:<24} {:>8} {:<6} {:<9} {:<8} {:>8}  orgs",
                    "name", "chain id", "engine", "suite", "status", "height"
                );
                for c in &chains {
                    text.push_str(&format!(
                        "\n{:<24} {:>8} {:<6} {:<9} {:<8} {:>8}  {}",
                        c["name"].as_str().unwrap_or(""),
                        c["chain_id"],
                        c["engine"].as_str().unwrap_or(""),
                        c["suite"].as_str().unwrap_or(""),
                        c["status"].as_str().unwrap_or(""),
                        c.get("height")
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| "-".into()),
                        c["orgs"]
                            .as_array()
                            .map(|o| o
                                .iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join(","))
                            .unwrap_or_default(),
                    ));
                }
                text
            })
        }
        ChainCommand::Show { chain } => {
            let c = ctx.client.chain_info(&chain).await?;
            print(ctx.json, &c, || {
                format!(
                    "name      {}\nchain id  {}\nengine    {}\nsuite     {}\nstatus    {}\nhosted    {}\nheight    {}",
                    c["name"].as_str().unwrap_or(""),
                    c["chain_id"],
                    c["engine"].as_str().unwrap_or(""),
                    c["suite"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    c["hosted"],
                    c.get("height").map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                )
            })
        }
    }
}
