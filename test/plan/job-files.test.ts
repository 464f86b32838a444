import { describe, it, expect } from 'vitest';
import type { Host, Owner } from '../../src/job/job.js';
import {
  attemptRecord, authorizedKeys, containerGroup, containerPasswd, envFile, jobKey, jobPaths, knownHosts, mpiEnv, mpichHostfile,
  openMpiHostfile, OPENSSH_MIN, parseAttemptRecord, openSshAtLeast, parseOpenSsh, sshConfig, sshdConfig, sshdLacks,
} from '../../src/plan/job-files.js';

const alice: Owner = { name: 'alice', uid: 1000, gid: 1000, gids: [27, 44], home: '/home/alice', shell: '/bin/bash' };
const ATTEMPT = { id: '4711', index: 0, attempt: 'node1' };
const PATHS = jobPaths('/var/lib/jobbox/jobs', ATTEMPT);
const DIR = '/var/lib/jobbox/jobs/4711.0.node1';
const HOSTS: Host[] = [{ name: 'node1', slots: 2 }, { name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }];

/** The value of each `Key value` line of an sshd/ssh config, keyed by the key. */
function directives(text: string): Map<string, string> {
  return new Map(
    text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
      const [key = '', ...rest] = l.split(' ');
      return [key, rest.join(' ')];
    }),
  );
}

describe('jobKey', () => {
  it.each([
    [{ id: '4711', index: 0, attempt: 'node1' }, '4711.0.node1'],
    [{ id: '4711', index: 12, attempt: 'node1' }, '4711.12.node1'],
    [{ id: '4711', index: 0, attempt: '3' }, '4711.0.3'],
  ])('%j → %s', (job, key) => {
    expect(jobKey(job)).toBe(key);
  });

  it('tells attempts apart', () => {
    expect(jobKey({ ...ATTEMPT, attempt: 'node2' })).not.toBe(jobKey(ATTEMPT));
  });
});

describe('jobPaths', () => {
  it('puts every file in the attempt directory', () => {
    expect(PATHS).toEqual({
      dir: DIR,
      userKey: `${DIR}/userkey`,
      userKeyPub: `${DIR}/userkey.pub`,
      hostKey: `${DIR}/hostkey`,
      hostKeyPub: `${DIR}/hostkey.pub`,
      authorizedKeys: `${DIR}/authorized_keys`,
      knownHosts: `${DIR}/known_hosts`,
      sshdConfig: `${DIR}/sshd_config`,
      sshConfig: `${DIR}/ssh_config`,
      hostfile: `${DIR}/hostfile`,
      mpichHostfile: `${DIR}/hostfile.mpich`,
      passwd: `${DIR}/passwd`,
      group: `${DIR}/group`,
      attempt: `${DIR}/attempt`,
      envFile: `${DIR}/env`,
      userEnv: `${DIR}/userenv`,
      cwd: `${DIR}/cwd`,
    });
  });

  it('gives each file its own path', () => {
    const { dir, ...files } = PATHS;
    expect(new Set(Object.values(files)).size).toBe(Object.keys(files).length);
    for (const path of Object.values(files)) expect(path.startsWith(`${dir}/`)).toBe(true);
  });
});

describe('sshdConfig', () => {
  const text = sshdConfig(PATHS, alice, 41000);

  it('is the whole file', () => {
    expect(text).toMatchInlineSnapshot(`
      "# jobbox: sshd for one job, running as alice
      Port 41000
      HostKey /var/lib/jobbox/jobs/4711.0.node1/hostkey
      AuthorizedKeysFile /var/lib/jobbox/jobs/4711.0.node1/authorized_keys
      AllowUsers alice
      PidFile none
      UsePAM no
      PermitRootLogin no
      PubkeyAuthentication yes
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      HostbasedAuthentication no
      PermitUserEnvironment no
      StrictModes yes
      X11Forwarding no
      AllowAgentForwarding no
      AllowTcpForwarding no
      PrintMotd no
      LoginGraceTime 30
      MaxStartups 100
      PerSourceMaxStartups 10
      ClientAliveInterval 15
      ClientAliveCountMax 3
      SetEnv JOBBOX_HOSTFILE=/var/lib/jobbox/jobs/4711.0.node1/hostfile OMPI_MCA_orte_default_hostfile=/var/lib/jobbox/jobs/4711.0.node1/hostfile HYDRA_HOST_FILE=/var/lib/jobbox/jobs/4711.0.node1/hostfile.mpich
      AcceptEnv JOBBOX_X11_DISPLAY JOBBOX_X11_XAUTHORITY
      "
    `);
  });

  it.each([
    ['Port', '41000'],
    ['HostKey', `${DIR}/hostkey`],
    ['AuthorizedKeysFile', `${DIR}/authorized_keys`],
    ['AllowUsers', 'alice'],
    ['PermitRootLogin', 'no'],
    ['PasswordAuthentication', 'no'],
    ['KbdInteractiveAuthentication', 'no'],
    ['HostbasedAuthentication', 'no'],
    ['PubkeyAuthentication', 'yes'],
    ['PermitUserEnvironment', 'no'],
    ['StrictModes', 'yes'],
    ['AllowTcpForwarding', 'no'],
    // Logins not yet authenticated: a short wait, one number (so no random drop below it), and a
    // cap per source address, so that another user's idle connections cannot keep the owner out.
    ['LoginGraceTime', '30'],
    ['MaxStartups', '100'],
    ['PerSourceMaxStartups', '10'],
    ['SetEnv', `JOBBOX_HOSTFILE=${DIR}/hostfile OMPI_MCA_orte_default_hostfile=${DIR}/hostfile HYDRA_HOST_FILE=${DIR}/hostfile.mpich`],
    // X11 reaches the container over the node's network, never through the job's sshd; the
    // session takes only the run phase's two X11 variables (plan/x11.ts), nothing a client names.
    ['X11Forwarding', 'no'],
    ['AcceptEnv', 'JOBBOX_X11_DISPLAY JOBBOX_X11_XAUTHORITY'],
  ])('%s %s', (key, value) => {
    expect(directives(text).get(key)).toBe(value);
  });

  it('names each directive once (sshd takes the first)', () => {
    const keys = text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(' ')[0]);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keeps the authorized keys out of the user home', () => {
    expect(directives(text).get('AuthorizedKeysFile')).not.toMatch(/%h|~|\/home\//);
  });
});

describe('sshdConfig for the image\'s sshd', () => {
  // sshd refuses to start on a directive it does not know: each is written only where known.
  it.each([
    ['not known (dry run): a current sshd', undefined, 'PerSourceMaxStartups 10'],
    ['OpenSSH 10.0', { major: 10, minor: 0 }, 'PerSourceMaxStartups 10'],
    ['OpenSSH 9.2 (Debian 12)', { major: 9, minor: 2 }, 'PerSourceMaxStartups 10'],
    ['OpenSSH 8.5, which brought PerSourceMaxStartups', { major: 8, minor: 5 }, 'PerSourceMaxStartups 10'],
    ['OpenSSH 8.4 (Debian 11)', { major: 8, minor: 4 }, "# PerSourceMaxStartups 10: left out, this image's sshd is OpenSSH 8.4"],
    ['OpenSSH 8.0 (EL 8)', { major: 8, minor: 0 }, "# PerSourceMaxStartups 10: left out, this image's sshd is OpenSSH 8.0"],
  ])('%s', (_name, sshd, line) => {
    const text = sshdConfig(PATHS, alice, 41000, sshd);
    expect(text.split('\n').filter((l) => l.includes('PerSourceMaxStartups'))).toEqual([line]);
    // The rest is the same file whatever the release.
    expect(text.replace(line, 'PerSourceMaxStartups 10')).toBe(sshdConfig(PATHS, alice, 41000));
  });

  it.each([
    [{ major: 9, minor: 2 }, []],
    [{ major: 8, minor: 5 }, []],
    [{ major: 8, minor: 4 }, ['PerSourceMaxStartups']],
    [OPENSSH_MIN, ['PerSourceMaxStartups']],
  ])('sshdLacks %j = %j', (sshd, lacks) => {
    expect(sshdLacks(sshd)).toEqual(lacks);
  });

  it.each([
    ['sshd -V of a current sshd', 'OpenSSH_9.2, OpenSSL 3.0.20 7 Apr 2026\n', { major: 9, minor: 2 }],
    ['the usage of a distro build', 'unknown option -- V\nOpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.20 7 Apr 2026\nusage: sshd [-46DdeiqTt] …\n', { major: 9, minor: 2 }],
    ['CentOS 7 (no -V: usage)', 'sshd: illegal option -- V\nOpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017\nusage: sshd [-46DdeiqTt] …\n', { major: 7, minor: 4 }],
    ['a two-digit major', 'OpenSSH_10.0p2 Debian-5, OpenSSL 3.5.0\n', { major: 10, minor: 0 }],
    ['no sshd in the image', '/bin/sh: 1: /usr/sbin/sshd: not found\n', undefined],
    ['another ssh server', 'Dropbear v2022.83\n', undefined],
    ['nothing', '', undefined],
  ])('parseOpenSsh: %s', (_name, text, release) => {
    expect(parseOpenSsh(text)).toEqual(release);
  });

  it.each([
    [{ major: 8, minor: 5 }, true],
    [{ major: 8, minor: 10 }, true],
    [{ major: 9, minor: 0 }, true],
    [{ major: 8, minor: 4 }, false],
    [{ major: 7, minor: 9 }, false],
  ])('openSshAtLeast(%j, 8.5) = %s', (sshd, yes) => {
    expect(openSshAtLeast(sshd, { major: 8, minor: 5 })).toBe(yes);
  });

  it('needs at least 7.8, which brought SetEnv', () => {
    expect(OPENSSH_MIN).toEqual({ major: 7, minor: 8 });
  });
});

describe('sshConfig', () => {
  const text = sshConfig(PATHS, HOSTS, alice, 41000);

  it('is the whole file', () => {
    expect(text).toMatchInlineSnapshot(`
      "# jobbox: how this job's sessions reach its containers
      Host node1 node2 node3
        Port 41000
        User alice
        IdentityFile /var/lib/jobbox/jobs/4711.0.node1/userkey
        IdentitiesOnly yes
        UserKnownHostsFile /var/lib/jobbox/jobs/4711.0.node1/known_hosts
        GlobalKnownHostsFile /dev/null
        StrictHostKeyChecking yes
        CheckHostIP no
        BatchMode yes
        LogLevel ERROR
        # A node that reboots or vanishes sends no reset: without probes mpirun's sessions to it
        # would wait forever and the job would hang instead of failing.
        ServerAliveInterval 15
        ServerAliveCountMax 3
      "
    `);
  });

  it.each([
    ['Host', 'node1 node2 node3'],
    ['Port', '41000'],
    ['User', 'alice'],
    ['IdentityFile', `${DIR}/userkey`],
    ['IdentitiesOnly', 'yes'],
    ['UserKnownHostsFile', `${DIR}/known_hosts`],
    ['GlobalKnownHostsFile', '/dev/null'],
    ['StrictHostKeyChecking', 'yes'],
    ['BatchMode', 'yes'],
  ])('%s %s', (key, value) => {
    expect(directives(text).get(key)).toBe(value);
  });

  it('has a Host pattern for a single host too', () => {
    expect(directives(sshConfig(PATHS, [{ name: 'n01', slots: 8 }], alice, 40000)).get('Host')).toBe('n01');
  });
});

describe('knownHosts', () => {
  it.each([
    ['two hosts', HOSTS.slice(0, 2), 'ssh-ed25519 AAAA', '[node1]:41000,[node2]:41000 ssh-ed25519 AAAA\n'],
    ['comment and newline dropped', HOSTS.slice(0, 2), 'ssh-ed25519 AAAA jobbox-host\n', '[node1]:41000,[node2]:41000 ssh-ed25519 AAAA\n'],
    ['one host', HOSTS.slice(0, 1), ' ssh-ed25519   AAAA ', '[node1]:41000 ssh-ed25519 AAAA\n'],
  ])('%s', (_name, hosts, pub, line) => {
    expect(knownHosts(hosts, 41000, pub)).toBe(line);
  });
});

describe('authorizedKeys', () => {
  it.each([
    ['ssh-ed25519 AAAA jobbox-user\n', 'restrict,pty ssh-ed25519 AAAA jobbox-job\n'],
    ['ssh-ed25519 AAAA', 'restrict,pty ssh-ed25519 AAAA jobbox-job\n'],
    // A comment with options-like text must not survive.
    ['ssh-ed25519 AAAA command="sh",permitopen="*"', 'restrict,pty ssh-ed25519 AAAA jobbox-job\n'],
  ])('%j', (pub, line) => {
    expect(authorizedKeys(pub)).toBe(line);
  });
});

describe('hostfiles', () => {
  it('Open MPI: one "node slots=N" line per host, in job order', () => {
    expect(openMpiHostfile(HOSTS)).toBe('node1 slots=2\nnode2 slots=2\nnode3 slots=1\n');
  });

  it('MPICH: one "node:N" line per host, in job order', () => {
    expect(mpichHostfile(HOSTS)).toBe('node1:2\nnode2:2\nnode3:1\n');
  });

  it('mpiEnv points both MPIs at them', () => {
    expect(mpiEnv(PATHS)).toEqual({
      JOBBOX_HOSTFILE: `${DIR}/hostfile`,
      OMPI_MCA_orte_default_hostfile: `${DIR}/hostfile`,
      HYDRA_HOST_FILE: `${DIR}/hostfile.mpich`,
    });
  });
});

describe('containerPasswd', () => {
  const IMAGE = [
    'root:x:0:0:root:/root:/bin/bash',
    'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
    '# a comment',
    '',
    'alice:x:1001:1001:image alice:/home/alice:/bin/bash',
    'ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  ].join('\n');

  it('drops image entries with the owner name or uid and appends the owner', () => {
    expect(containerPasswd(IMAGE, alice)).toBe(
      [
        'root:x:0:0:root:/root:/bin/bash',
        'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
        'alice:x:1000:1000::/home/alice:/bin/bash',
      ].join('\n') + '\n',
    );
  });

  it('works on an empty image file', () => {
    expect(containerPasswd('', alice)).toBe('alice:x:1000:1000::/home/alice:/bin/bash\n');
  });

  it.each([
    ['/bin/bash', '/bin/bash'],
    ['/bin/sh', '/bin/sh'],
    ['/usr/bin/zsh', '/bin/sh'],
    ['/opt/site/bin/tcsh', '/bin/sh'],
    ['', '/bin/sh'],
  ])('shell %j → %s', (shell, expected) => {
    expect(containerPasswd('', { ...alice, shell }).trim().split(':').at(-1)).toBe(expected);
  });
});

describe('containerGroup', () => {
  const names = new Map([[1000, 'alice'], [27, 'sudo'], [44, 'video']]);

  it('adds the owner to existing groups, adds missing ones, and never reuses an image group name', () => {
    const image = ['root:x:0:', 'sudo:x:27:ubuntu', 'video:x:44:', 'alice:x:1001:', '# comment', 'users:x:100:'].join('\n');
    expect(containerGroup(image, { ...alice, gids: [27, 44, 600] }, names)).toBe(
      [
        'root:x:0:',
        'sudo:x:27:ubuntu,alice',
        'video:x:44:alice',
        'alice:x:1001:',
        'users:x:100:',
        'g1000:x:1000:alice',
        'g600:x:600:alice',
      ].join('\n') + '\n',
    );
  });

  it('does not list the owner twice', () => {
    expect(containerGroup('sudo:x:27:alice,bob\n', { ...alice, gids: [27] }, names)).toBe('sudo:x:27:bob,alice\nalice:x:1000:alice\n');
  });

  it('keeps the image name of a gid it already has', () => {
    expect(containerGroup('staff:x:1000:\n', { ...alice, gids: [] }, names)).toBe('staff:x:1000:alice\n');
  });

  it('works on an empty image file', () => {
    expect(containerGroup('', alice, names)).toBe('alice:x:1000:alice\nsudo:x:27:alice\nvideo:x:44:alice\n');
  });

  it('gives the same groups whatever the order of the image lines', () => {
    // The owner's gid 1000 exists in the image as "staff"; "alice" at gid 50 then clashes with nothing.
    const a = containerGroup('alice:x:50:\nstaff:x:1000:\n', { ...alice, gids: [] }, names);
    const b = containerGroup('staff:x:1000:\nalice:x:50:\n', { ...alice, gids: [] }, names);
    expect(a.split('\n').sort()).toEqual(b.split('\n').sort());
  });

  it.each([
    ['image name of a gid clashes with another of the owner groups', 'users:x:1000:\n', { ...alice, gids: [100] }, new Map([[1000, 'staff'], [100, 'users']])],
    ['host name clashes with an image group', 'video:x:99:\n', { ...alice, gids: [44] }, names],
  ])('never two groups with one name: %s', (_name, image, owner, groupNames) => {
    const groups = containerGroup(image, owner, groupNames).trim().split('\n').map((l) => l.split(':')[0]);
    expect(new Set(groups).size).toBe(groups.length);
  });
});

describe('envFile', () => {
  it.each([
    [{}, ''],
    [{ A: '1' }, 'A=1\n'],
    [{ A: '1', B: 'x=y z', C: '' }, 'A=1\nB=x=y z\nC=\n'],
    [{ Q: `"quoted" 'single' $HOME #hash` }, `Q="quoted" 'single' $HOME #hash\n`],
  ])('%j', (env, text) => {
    expect(envFile(env)).toBe(text);
  });
});

describe('attemptRecord', () => {
  const base = { uid: 2001, image: 'reg:5000/hpc/deb12:r1', nonce: '0123456789abcdef' };
  const nest = { path: '/lsf/c1/job.7.0.1700000000', controllers: ['memory', 'cpu,cpuacct', 'freezer'] };

  it('reads back what it wrote, with LSF\'s job cgroup when the first host nested in it', () => {
    expect(parseAttemptRecord(attemptRecord(base))).toEqual(base);
    expect(parseAttemptRecord(attemptRecord({ ...base, nest }))).toEqual({ ...base, nest });
  });

  it.each([
    ['a relative path', { ...nest, path: 'lsf/c1/job.7' }],
    ['a dot-dot level', { ...nest, path: '/lsf/../job.7' }],
    ['a controller name with a slash', { ...nest, controllers: ['memory/../x'] }],
    ['no controller list', { path: nest.path }],
  ])('drops a nest with %s, and keeps the rest', (_name, bad) => {
    expect(parseAttemptRecord(JSON.stringify({ ...base, nest: bad }))).toEqual(base);
  });

  it('is none for what is not a record', () => {
    expect(parseAttemptRecord('{"uid":"2001"}')).toBeUndefined();
    expect(parseAttemptRecord(undefined)).toBeUndefined();
  });
});
