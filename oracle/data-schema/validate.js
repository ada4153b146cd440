'use strict';

// Reads [{"model": "pipeline", "object": {...}}, ...] on stdin and prints, for each item,
// null when Screwdriver's `models.<model>.get` accepts the object (unknown keys allowed),
// or the validation message when it does not. Exit status 0 unless the input is unreadable.
// A model named `api.<name>.<route>` is the package's response schema of that route instead
// (`api.pipelineUsage.get`), checked as the API's whole answer.
const schemas = require('screwdriver-data-schema');

const { models } = schemas;

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
    input += chunk;
});
process.stdin.on('end', () => {
    const items = JSON.parse(input);
    const results = items.map(({ model, object }) => {
        if (model.startsWith('api.')) {
            const [, name, route] = model.split('.');
            const schema = schemas.api[name] && schemas.api[name][route];

            if (!schema) {
                return `unknown schema ${model}`;
            }
            const { error } = schema.validate(object, { allowUnknown: true });

            return error ? error.message : null;
        }
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
