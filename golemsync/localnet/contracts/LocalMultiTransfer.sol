// SPDX-License-Identifier: MIT
// golemsync's multi-transfer contract for the localnet. The daemon's erc20 driver pays several
// providers in one transaction through a contract with these four entry points (the address
// of the contract comes from HOLESKY_MULTI_PAYMENT_CONTRACT_ADDRESS, and the payer approves it
// first); without one on the chain such a payment "succeeds" without moving any token.
// A packed payment is one 32-byte word: the receiver in the high 20 bytes, the amount in the
// low 12. Direct calls move each amount from the payer to its receiver; indirect calls first
// move the sum to this contract, then pay each receiver from it.
pragma solidity ^0.8.20;

interface IToken {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

contract LocalMultiTransfer {
    IToken public immutable token;

    constructor(address token_) {
        token = IToken(token_);
    }

    function golemTransferDirect(address[] calldata recipients, uint256[] calldata amounts)
        external
    {
        require(recipients.length == amounts.length, "LocalMultiTransfer: length mismatch");
        for (uint256 i = 0; i < recipients.length; ++i) {
            require(token.transferFrom(msg.sender, recipients[i], amounts[i]),
                    "LocalMultiTransfer: transfer failed");
        }
    }

    function golemTransferIndirect(address[] calldata recipients, uint256[] calldata amounts)
        external
    {
        require(recipients.length == amounts.length, "LocalMultiTransfer: length mismatch");
        uint256 sum = 0;
        for (uint256 i = 0; i < amounts.length; ++i) {
            sum += amounts[i];
        }
        require(token.transferFrom(msg.sender, address(this), sum),
                "LocalMultiTransfer: transfer failed");
        for (uint256 i = 0; i < recipients.length; ++i) {
            require(token.transfer(recipients[i], amounts[i]),
                    "LocalMultiTransfer: transfer failed");
        }
    }

    function golemTransferDirectPacked(bytes32[] calldata payments) external {
        for (uint256 i = 0; i < payments.length; ++i) {
            (address to, uint256 amount) = _unpack(payments[i]);
            require(token.transferFrom(msg.sender, to, amount),
                    "LocalMultiTransfer: transfer failed");
        }
    }

    function golemTransferIndirectPacked(bytes32[] calldata payments, uint256 sum) external {
        require(token.transferFrom(msg.sender, address(this), sum),
                "LocalMultiTransfer: transfer failed");
        uint256 paid = 0;
        for (uint256 i = 0; i < payments.length; ++i) {
            (address to, uint256 amount) = _unpack(payments[i]);
            paid += amount;
            require(token.transfer(to, amount), "LocalMultiTransfer: transfer failed");
        }
        require(paid == sum, "LocalMultiTransfer: sum mismatch");
    }

    function _unpack(bytes32 payment) private pure returns (address, uint256) {
        return (address(uint160(uint256(payment) >> 96)), uint256(payment) & ((1 << 96) - 1));
    }
}
