// Encodes texts.json with every fixture tokenizer through Hugging Face tokenizers (the Rust
// library's Node bindings, npm package `tokenizers`) and writes reference.json:
//   {"tokenizers_version", "ids": {name: [[id...] per text]}, "doc_ids": {name: [...]}}
// "ids" without special tokens (our Tokenizer::encode); "doc_ids" with them (the
// post-processor's BOS; our encode_document) for the first 8 texts. See make_fixtures.py
// for how to run it.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const here = __dirname;
const names = ['gpt2', 'llama3', 'smollm2', 'llama2', 'tinyllama'];
const texts = JSON.parse(fs.readFileSync(path.join(here, 'texts.json'), 'utf8'));

(async () => {
  const out = { tokenizers_version: require('tokenizers/package.json').version, ids: {}, doc_ids: {} };
  for (const name of names) {
    const tok = Tokenizer.fromFile(path.join(here, name, 'tokenizer.json'));
    out.ids[name] = [];
    out.doc_ids[name] = [];
    for (const [i, t] of texts.entries()) {
      out.ids[name].push((await tok.encode(t, null, { addSpecialTokens: false })).getIds());
      if (i < 8) out.doc_ids[name].push((await tok.encode(t, null, { addSpecialTokens: true })).getIds());
    }
  }
  fs.writeFileSync(path.join(here, 'reference.json'), JSON.stringify(out) + '\n');
  console.log(`reference.json: ${texts.length} texts x ${names.length} tokenizers, tokenizers ${out.tokenizers_version}`);
})();
