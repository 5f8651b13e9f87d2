// Reference token ids from the npm package gpt-3-encoder (an independent
// JavaScript port of GPT-2's encoder.py), for tests/text/gpt2_bpe_test.cc.
// Usage: node gpt2_reference.js PACKAGE_DIR INPUTS_JSON OUTPUT_JSON
// INPUTS_JSON is an array of strings; OUTPUT_JSON gets an array of id arrays.
'use strict';
const fs = require('fs');
const [packageDir, inputsPath, outputPath] = process.argv.slice(2);
const { encode } = require(packageDir);
const inputs = JSON.parse(fs.readFileSync(inputsPath, 'utf-8'));
fs.writeFileSync(outputPath, JSON.stringify(inputs.map((text) => encode(text))));
