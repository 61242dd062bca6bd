// Checks that a Cucumber message stream holds together: every id declared
// once, every id referred to declared. The merge runs it on what it made, so a
// merge that loses or doubles something fails here instead of rendering a
// report with holes in it.

/** Every AST node id in a gherkin document (scenarios, steps, tags, rows, ...). */
function astIds(node, out) {
  if (Array.isArray(node)) for (const n of node) astIds(n, out);
  else if (node && typeof node === 'object') {
    if (typeof node.id === 'string') out.push(node.id);
    for (const [k, v] of Object.entries(node)) if (k !== 'id') astIds(v, out);
  }
  return out;
}

/**
 * @param {Record<string, any>[]} messages
 * @returns {string[]} one line per problem: an id declared twice, or a reference to an id nobody declared
 */
export function streamProblems(messages) {
  const declared = new Map(); // id -> what declared it
  const problems = [];
  const declare = (id, what) => {
    if (declared.has(id)) problems.push(`id ${id} declared twice: ${declared.get(id)} and ${what}`);
    else declared.set(id, what);
  };
  const refs = []; // [id, kind wanted, who refers]
  const ref = (id, kind, who) => { if (id !== undefined) refs.push([id, kind, who]); };

  for (const e of messages) {
    if (e.gherkinDocument) for (const id of astIds(e.gherkinDocument.feature, [])) declare(id, 'ast');
    else if (e.pickle) {
      const p = e.pickle;
      declare(p.id, 'pickle');
      for (const s of p.steps) { declare(s.id, 'pickleStep'); for (const a of s.astNodeIds) ref(a, 'ast', `pickle step ${s.id}`); }
      for (const a of p.astNodeIds) ref(a, 'ast', `pickle ${p.id}`);
      for (const t of p.tags) ref(t.astNodeId, 'ast', `tag ${t.name} of pickle ${p.id}`);
    } else if (e.stepDefinition) declare(e.stepDefinition.id, 'stepDefinition');
    else if (e.hook) declare(e.hook.id, 'hook');
    else if (e.parameterType) declare(e.parameterType.id, 'parameterType');
    else if (e.testRunStarted) { if (e.testRunStarted.id) declare(e.testRunStarted.id, 'testRunStarted'); }
    else if (e.testCase) {
      const c = e.testCase;
      declare(c.id, 'testCase');
      ref(c.pickleId, 'pickle', `testCase ${c.id}`);
      ref(c.testRunStartedId, 'testRunStarted', `testCase ${c.id}`);
      for (const s of c.testSteps) {
        declare(s.id, 'testStep');
        ref(s.pickleStepId, 'pickleStep', `testStep ${s.id}`);
        ref(s.hookId, 'hook', `testStep ${s.id}`);
        for (const d of s.stepDefinitionIds ?? []) ref(d, 'stepDefinition', `testStep ${s.id}`);
      }
    } else if (e.testCaseStarted) {
      declare(e.testCaseStarted.id, 'testCaseStarted');
      ref(e.testCaseStarted.testCaseId, 'testCase', `testCaseStarted ${e.testCaseStarted.id}`);
    } else if (e.testStepStarted || e.testStepFinished) {
      const s = e.testStepStarted ?? e.testStepFinished;
      ref(s.testCaseStartedId, 'testCaseStarted', 'testStepStarted/Finished');
      ref(s.testStepId, 'testStep', 'testStepStarted/Finished');
    } else if (e.testCaseFinished) ref(e.testCaseFinished.testCaseStartedId, 'testCaseStarted', 'testCaseFinished');
    else if (e.testRunHookStarted) {
      const h = e.testRunHookStarted;
      declare(h.id, 'testRunHookStarted');
      ref(h.hookId, 'hook', `testRunHookStarted ${h.id}`);
      ref(h.testRunStartedId, 'testRunStarted', `testRunHookStarted ${h.id}`);
    } else if (e.testRunHookFinished) ref(e.testRunHookFinished.testRunHookStartedId, 'testRunHookStarted', 'testRunHookFinished');
    else if (e.attachment || e.externalAttachment) {
      const a = e.attachment ?? e.externalAttachment;
      ref(a.testCaseStartedId, 'testCaseStarted', 'attachment');
      ref(a.testStepId, 'testStep', 'attachment');
      ref(a.testRunStartedId, 'testRunStarted', 'attachment');
      ref(a.testRunHookStartedId, 'testRunHookStarted', 'attachment');
    } else if (e.suggestion) {
      declare(e.suggestion.id, 'suggestion');
      ref(e.suggestion.pickleStepId, 'pickleStep', `suggestion ${e.suggestion.id}`);
    } else if (e.testRunFinished) ref(e.testRunFinished.testRunStartedId, 'testRunStarted', 'testRunFinished');
  }
  for (const [id, kind, who] of refs) {
    const found = declared.get(id);
    if (found !== kind) problems.push(`${who} refers to ${kind} ${id}, ${found ? `which is a ${found}` : 'which is not in the stream'}`);
  }
  return problems;
}

/** Throws with the first problems listed when the stream does not hold together. */
export function assertConsistent(messages) {
  const problems = streamProblems(messages);
  if (problems.length) {
    throw new Error(`merged messages do not hold together (${problems.length} problems):\n  ${problems.slice(0, 10).join('\n  ')}`);
  }
}
