// A Hardhat project pointed at a Tongtian dev chain, configured as one
// would configure Hardhat's own `localhost` node: no keys, so `accounts`
// is "remote" and the node signs with its unlocked development accounts.
require("@nomicfoundation/hardhat-ethers");

module.exports = {
  defaultNetwork: "tongtian",
  networks: {
    tongtian: { url: process.env.TONGTIAN_RPC ?? "http://127.0.0.1:8645/eth", chainId: 8645 },
  },
};
