'use strict';

// Runs Screwdriver's own parser over many screwdriver.yaml documents in one process.
//
//   node parse.js < cases.json > results.json
//
// Input: a JSON list of {"yaml": "...", "templates": [...], "tags": [...],
// "pipelineTemplates": [...], "pipelineTemplateTags": [...]} (all but yaml optional). Output: a JSON list with parsePipelineYaml's result for each case, in order.
// A bare screwdriver.yaml on stdin (not starting with "[") is parsed alone, for quick checks.
//
// Templates are served by a small in-memory stand-in for the templateFactory interface the
// parser calls (getFullNameAndVersion and getTemplate), with the lookup rules of Screwdriver's
// template store as our server implements them: exact version, tag, version prefix (highest
// match) or, with no version, the most recently published one.
const { parsePipelineYaml, parsePipelineTemplate } = require('screwdriver-config-parser');

const NAME = /^([\w/-]+)(?:@((?:(?:\d+)(?:\.\d+)?(?:\.\d+)?)|(?:[a-zA-Z][\w-.]+)))?$/;
const EXACT_VERSION = /^(\d+)\.(\d+)\.(\d+)$/;
const VERSION = /^(\d+)(\.\d+)?(\.\d+)?$/;
const TAG = /^[a-zA-Z][\w-.]+$/;

function splitName(templateName) {
    const slash = templateName.indexOf('/');

    if (slash === -1) {
        return { namespace: 'default', name: templateName };
    }

    return { namespace: templateName.slice(0, slash), name: templateName.slice(slash + 1) };
}

function compareVersions(a, b) {
    const pa = a.split('.').map(Number);
    const pb = b.split('.').map(Number);

    for (let i = 0; i < Math.max(pa.length, pb.length); i += 1) {
        const diff = (pa[i] || 0) - (pb[i] || 0);

        if (diff !== 0) {
            return diff;
        }
    }

    return 0;
}

function templateFactory(templates, tags) {
    return {
        getFullNameAndVersion(fullTemplateName) {
            const [, templateName, versionOrTag] = NAME.exec(fullTemplateName);

            return {
                templateName,
                versionOrTag,
                isExactVersion: EXACT_VERSION.exec(versionOrTag),
                isVersion: VERSION.exec(versionOrTag),
                isTag: versionOrTag ? versionOrTag.match(TAG) : null
            };
        },
        async getTemplate(fullTemplateName) {
            const { templateName, versionOrTag, isVersion } = this.getFullNameAndVersion(fullTemplateName);
            const { namespace, name } = splitName(templateName);
            const same = templates.filter(t => t.namespace === namespace && t.name === name);
            let version = versionOrTag;

            if (versionOrTag && !isVersion) {
                const tag = tags.find(t => t.namespace === namespace && t.name === name && t.tag === versionOrTag);

                if (!tag) {
                    return null;
                }
                version = tag.version;
            }
            if (!version) {
                return same.reduce((best, t) => (!best || t.id > best.id ? t : best), null);
            }
            const matching = same.filter(t => `${t.version}.`.startsWith(`${version}.`));

            matching.sort((a, b) => compareVersions(b.version, a.version) || b.id - a.id);

            return JSON.parse(JSON.stringify(matching[0] || null));
        }
    };
}

// Pipeline templates: the three factories the parser's merge phase calls, over rows of
// {id, namespace, name, version, config} and tags {namespace, name, tag, version}. The parser
// looks the tag up itself; the version may then be exact, a prefix, or absent (the newest).
function pipelineTemplateFactories(rows, tags) {
    return {
        pipelineTemplateTagFactory: {
            async get({ namespace, name, tag }) {
                return tags.find(t => t.namespace === namespace && t.name === name && t.tag === tag) || null;
            }
        },
        pipelineTemplateVersionFactory: {
            async getWithMetadata({ namespace, name, version }) {
                const same = rows.filter(t => t.namespace === namespace && t.name === name);

                if (!version) {
                    return JSON.parse(JSON.stringify(same.reduce((best, t) => (!best || t.id > best.id ? t : best), null)));
                }
                if (!VERSION.exec(version)) {
                    return null;
                }
                const matching = same.filter(t => `${t.version}.`.startsWith(`${version}.`));

                matching.sort((a, b) => compareVersions(b.version, a.version) || b.id - a.id);

                return JSON.parse(JSON.stringify(matching[0] || null));
            }
        },
        pipelineTemplateFactory: {}
    };
}

async function parseOne(item) {
    // {"pipelineTemplateYaml": "..."}: what publishing stores of a pipeline template.
    if (item.pipelineTemplateYaml !== undefined) {
        try {
            return await parsePipelineTemplate({ yaml: item.pipelineTemplateYaml });
        } catch (err) {
            return { errors: (err.details || [{ message: String(err) }]).map(d => d.message) };
        }
    }
    const templates = item.templates || [];
    const tags = item.tags || [];
    const result = await parsePipelineYaml({
        yaml: item.yaml,
        templateFactory: templateFactory(templates, tags),
        ...pipelineTemplateFactories(item.pipelineTemplates || [], item.pipelineTemplateTags || [])
    });

    // A YAML timestamp that the parser deep-copied is no longer a working Date, so its result
    // cannot even be written as JSON; say so instead of failing the whole batch.
    try {
        return JSON.parse(JSON.stringify(result));
    } catch (err) {
        return { oracleError: String(err) };
    }
}

let input = '';

process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
    input += chunk;
});
process.stdin.on('end', async () => {
    if (!input.startsWith('[')) {
        process.stdout.write(`${JSON.stringify(await parseOne({ yaml: input }))}\n`);

        return;
    }
    const results = [];

    for (const item of JSON.parse(input)) {
        // One at a time: the parser is async, but the cases must not share state.
        // eslint-disable-next-line no-await-in-loop
        results.push(await parseOne(item));
    }
    process.stdout.write(`${JSON.stringify(results)}\n`);
});
