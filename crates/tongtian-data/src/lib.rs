//! Data assets on chain, the data itself never: the `data` module.
//!
//! - [`data`]: a **data asset** is a non-fungible token owned by an
//!   account: its name, schema, row count, a salted Merkle root over its
//!   rows (the salt stays with the owner, so the root reveals nothing),
//!   the owner agent's endpoint and key, a price per job and a status.
//!   Owners transfer, update (a new commitment, the version bumped) and
//!   retire assets, and **grant** other accounts the use of one (which
//!   protocols, which columns, until which block, how many jobs), or
//!   revoke a grant. Every change is kept in the asset's history.
//! - [`rows`]: the rows as their owner holds them (a CSV file) and the
//!   salted Merkle commitment over them, with openings for audits.
//! - [`job`]: privacy jobs over assets: escrow, acceptance that spends
//!   grants, completion co-signed by every party, abort with refund.

pub mod data;
pub mod job;
pub mod rows;
