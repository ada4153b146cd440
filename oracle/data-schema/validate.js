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
        // A model without a `get` (templateTag) is checked against its `base`.
        const schema = models[model].get || models[model].base;
        const { error } = schema.validate(object, { allowUnknown: true });
        return error ? error.message : null;
    });
    process.stdout.write(JSON.stringify(results));
});
