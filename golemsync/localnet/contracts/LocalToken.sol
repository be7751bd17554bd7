// SPDX-License-Identifier: MIT
// golemsync's test token for the localnet: a minimal ERC-20 (EIP-20) whose whole supply is
// minted to the deployer (10^9 tokens). Rebuild the bytecode with `python -m golemsync.localnet.token --build`
// (needs `npm install solc`, which ships the compiler as wasm and works offline).
pragma solidity ^0.8.20;

contract LocalToken {
    string public constant name = "golemsync localnet GLM";
    string public constant symbol = "tGLM";
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor() {
        uint256 supply = 1_000_000_000 * 10 ** 18;
        totalSupply = supply;
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "LocalToken: allowance exceeded");
            allowance[from][msg.sender] = allowed - value;
        }
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) private {
        require(to != address(0), "LocalToken: transfer to the zero address");
        uint256 held = balanceOf[from];
        require(held >= value, "LocalToken: balance exceeded");
        balanceOf[from] = held - value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
