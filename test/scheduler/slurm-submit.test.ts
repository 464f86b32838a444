import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import { SCRIPT_MARKER, imageFeatures, jobSubmitLua, submittedScript, wrapperScript } from '../../src/scheduler/slurm-submit.js';

const CLI = '/opt/jobbox/dist/cli.js';
const CONFIG = parseConfig(
  [
    '[queue normal]', 'default_image = deb12', 'allowed_images = deb12 deb12-mpich',
    '[queue short]', 'default_image = deb12-mpich',
    '[image deb12]', 'ref = registry.example.org/deb12:r1',
    '[image deb12-mpich]', 'ref = registry.example.org/deb12-mpich:r1',
  ].join('\n'),
  'test.ini',
);
const WRAPPED = `${wrapperScript(CLI)}${SCRIPT_MARKER}\n`;

describe('submittedScript', () => {
  it.each([
    ['a wrapped script', `${WRAPPED}#!/bin/sh\nid\n`, '#!/bin/sh\nid\n'],
    ['a wrapped empty script', WRAPPED, ''],
    ['a marker in the user part stays the user part', `${WRAPPED}id\n${SCRIPT_MARKER}\n`, `id\n${SCRIPT_MARKER}\n`],
    ['a wrapped script wrapped again', `${WRAPPED}${WRAPPED}id\n`, `${WRAPPED}id\n`],
    // Byte for byte what jobbox 0.1's job_submit.lua put in front of a job still pending at an upgrade.
    ['a script wrapped by jobbox 0.1', `#!/bin/sh\n# jobbox: this batch script runs inside the job's first container (jobbox slurm start).\nexec /usr/bin/node ${CLI} slurm start --script "$0" -- "$@"\nexit 127\n${SCRIPT_MARKER}\nid\n`, 'id\n'],
  ])('%s → the submitted script', (_name, text, script) => expect(submittedScript(text, CLI)).toBe(script));

  it.each([
    ['a script never wrapped', '#!/bin/sh\nid\n'],
    ['the marker below a script of the user (job_submit.lua used to leave it alone)', `#!/bin/sh\nid\n${SCRIPT_MARKER}\n`],
    ['the marker first, with no wrapper', `${SCRIPT_MARKER}\n#!/bin/sh\nid\n`],
    ['a wrapper naming another program', `${wrapperScript('/home/mallory/cli.js')}${SCRIPT_MARKER}\nid\n`],
    ['the wrapper without the marker', `${wrapperScript(CLI)}id\n`],
    ['the wrapper after a first line of the user', `#!/bin/sh\n${WRAPPED}id\n`],
    ['the wrapper with CRLF line ends', WRAPPED.replaceAll('\n', '\r\n')],
    ['nothing', ''],
  ])('%s → not wrapped', (_name, text) => expect(submittedScript(text, CLI)).toBeUndefined());
});

describe('jobSubmitLua', () => {
  const lua = jobSubmitLua(CONFIG, CLI, '/etc/jobbox/jobbox.ini');

  it('wraps with exactly the text the Prolog and `slurm batch` check for', () => {
    // Lua drops the newline right after `[==[`; JSON string escapes read the same in Lua.
    const wrapper = /^local WRAPPER = \[==\[\n([^]*?)\]==\]$/m.exec(lua)?.[1];
    const marker = /^local MARKER = (".*")$/m.exec(lua)?.[1];
    expect(`${wrapper}${JSON.parse(marker!) as string}`).toBe(WRAPPED);
    expect(lua).toContain('local WRAPPED = WRAPPER .. MARKER\n');
  });

  it('lists every queue as a partition with its default and allow-list, and the partitions that allow each alias', () => {
    expect(lua).toContain(
      [
        'local PARTITIONS = {',
        '  ["normal"] = { default = "deb12", allowed = { ["deb12"] = true, ["deb12-mpich"] = true }, list = "deb12 deb12-mpich", use = "-C docker-deb12 or -C docker-deb12-mpich", pin = false },',
        '  ["short"] = { default = "deb12-mpich", allowed = { ["deb12-mpich"] = true }, list = "deb12-mpich", use = "-C docker-deb12-mpich", pin = false },',
        '}',
        'local DEFAULT_PARTITION = "normal"',
        '-- The partitions that allow each alias, for the next step a refusal names.',
        'local ALLOWED_IN = {',
        '  ["deb12"] = "-p normal",',
        '  ["deb12-mpich"] = "-p normal or -p short",',
        '}',
      ].join('\n'),
    );
  });

  it('names no partition for an alias none allows', () => {
    const unused = parseConfig('[queue normal]\ndefault_image = deb12\n[image deb12]\nref = r.example.org/deb12\n[image old]\nref = r.example.org/old\n', 'u.ini');
    expect(jobSubmitLua(unused, CLI, '/etc/jobbox/jobbox.ini')).toContain('local ALLOWED_IN = {\n  ["deb12"] = "-p normal",\n}\n');
  });

  // Each rule against its bypass (issue 11); the testbed suite slurm-security runs them in slurmctld.
  it.each([
    ['-p normal,short: every listed partition is checked', 'for _, name in ipairs(names) do\n    if PARTITIONS[name] == nil then'],
    ['the image is checked in every listed partition', 'for _, name in ipairs(names) do\n    local partition = PARTITIONS[name]\n    if named[1] == nil and not partition.allowed[image] then'],
    ['an image a partition allows is suggested only when the job names one', 'if #names == 1 then steps[#steps + 1] = partition.use end'],
    ['a user image is judged by jobbox in every listed partition', `for _, name in ipairs(names) do command = command .. " --queue '" .. name .. "'" end`],
    ['only plain characters reach io.popen', 'if #image > 330 or not string.match(image, "^[%w][%w%._:/@%-]*$") then'],
    ['the pinned image cannot be changed in the comment', 'string.find(job_rec.comment or "", "jobbox%-image=")'],
    ['a marker below the top does not stop the wrap', 'string.sub(job_desc.script, 1, #WRAPPED) ~= WRAPPED'],
    ['no move into or out of a jobbox partition', 'and (any_ours(job_desc.partition) or any_ours(job_rec.partition)) then'],
  ])('%s', (_name, text) => expect(lua).toContain(text));

  it('refuses paths the shell of io.popen would read', () => {
    expect(() => jobSubmitLua(CONFIG, "/opt/job'box/cli.js", '/etc/jobbox/jobbox.ini')).toThrow("jobbox: slurm job-submit-lua: the paths the Lua runs must be absolute and plain ([A-Za-z0-9._/-]): /opt/job'box/cli.js");
  });

  it('is the whole generated filter', () => expect(lua).toMatchSnapshot());
});

describe('imageFeatures', () => {
  it('names every image as a docker-<alias> feature', () => expect(imageFeatures(CONFIG)).toBe('docker-deb12,docker-deb12-mpich'));
});
