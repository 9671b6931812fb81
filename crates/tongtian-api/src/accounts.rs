//! Accounts a node signs for on its users' behalf, as Hardhat's and
//! Anvil's nodes do for their development accounts.
//!
//! Tools written against those nodes ask the node for its accounts
//! (`eth_accounts`) and have it sign (`eth_sendTransaction`,
//! `eth_signTransaction`, `eth_sign`, `personal_sign`,
//! `eth_signTypedData_v4`): Hardhat's `localhost` network does so unless
//! it is given keys, as do web3.py's `w3.eth.accounts[0]` tutorials and
//! Foundry's `--unlocked`. `tongtian dev` unlocks the ten development
//! accounts, whose keys are public anyway (the mnemonic is
//! `test test ... junk`); other nodes unlock none, and every signing
//! method then answers "unknown account".

use parking_lot::{Mutex, MutexGuard};
use tongtian_crypto::eth::EthKey;
use tongtian_types::Address;

/// The unlocked accounts of one node's API, in the order `eth_accounts`
/// lists them.
#[derive(Debug, Default)]
pub struct UnlockedAccounts {
    keys: Vec<(Address, EthKey)>,
    /// Held from choosing a transaction's nonce until it is in the pool, so
    /// concurrent `eth_sendTransaction`s from one account get consecutive
    /// nonces instead of the same one.
    sending: Mutex<()>,
}

impl UnlockedAccounts {
    /// Unlock `keys`.
    pub fn new(keys: Vec<EthKey>) -> Self {
        UnlockedAccounts {
            keys: keys
                .into_iter()
                .map(|k| (Address(k.address()), k))
                .collect(),
            sending: Mutex::new(()),
        }
    }

    /// The development accounts of Hardhat and Anvil, as many as dev
    /// chains prefund.
    pub fn dev() -> Self {
        Self::new(EthKey::dev_accounts(
            tongtian_node::dev::DEV_ACCOUNTS as u32,
        ))
    }

    /// The unlocked addresses.
    pub fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.keys.iter().map(|(a, _)| a)
    }

    /// The unlocked accounts with their keys.
    pub fn keys(&self) -> impl Iterator<Item = (&Address, &EthKey)> {
        self.keys.iter().map(|(a, k)| (a, k))
    }

    /// The key of `address`, if it is unlocked.
    pub fn key(&self, address: &Address) -> Option<&EthKey> {
        self.keys.iter().find(|(a, _)| a == address).map(|(_, k)| k)
    }

    /// Serialize sending: hold the guard from nonce choice to admission.
    pub(crate) fn sending(&self) -> MutexGuard<'_, ()> {
        self.sending.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_listed_in_order_and_only_they_have_keys() {
        let u = UnlockedAccounts::dev();
        let listed: Vec<String> = u.addresses().map(|a| a.to_string()).collect();
        assert_eq!(listed.len(), 10);
        // Hardhat's and Anvil's account #0.
        assert_eq!(listed[0], "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
        let a0: Address = listed[0].parse().unwrap();
        assert_eq!(u.key(&a0).map(|k| Address(k.address())), Some(a0));
        assert!(u.key(&Address([9; 20])).is_none());
        assert_eq!(UnlockedAccounts::default().addresses().count(), 0);
    }
}
