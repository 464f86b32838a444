// The root project's setup: its cases check what jobbox refuses only as root, and a run that
// is not root would skip them all and pass.
if (process.getuid?.() !== 0) throw new Error('the root project must run as root: its cases are skipped otherwise');
