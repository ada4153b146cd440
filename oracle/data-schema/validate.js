'use strict';

// Reads [{"model": "pipeline", "object": {...}}, ...] on stdin and prints, for each item,
// null when Screwdriver's `models.<model>.get` accepts the object (unknown keys allowed),
// or the validation message when it does not. Exit status 0 unless the input is unreadable.
const { models } = require('screwdriver-data-schema');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
    input += chunk;
});
process.stdin.on('end', () => {
    const items = JSON.parse(input);
    const results = items.map(({ model, object }) => {
        if (!models[model]) {
            return `unknown model ${model}`;
        }
        const { error } = models[model].get.validate(object, { allowUnknown: true });
        return error ? error.message : null;
    });
    process.stdout.write(JSON.stringify(results));
});
