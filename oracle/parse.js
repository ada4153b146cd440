'use strict';

// Reads a screwdriver.yaml on stdin and prints what Screwdriver's own parser makes of it.
const { parsePipelineYaml } = require('screwdriver-config-parser');

let yaml = '';

process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
    yaml += chunk;
});
process.stdin.on('end', async () => {
    const result = await parsePipelineYaml({ yaml });

    process.stdout.write(`${JSON.stringify(result)}\n`);
});
