import { describe, expect, it } from 'vitest';
import { ExitCode } from '@georep/core';
import { renderStatus, runCli } from '@georep/cli';
import { reportWith } from './status-fixture.js';
import { getFreePort } from '@georep/testkit';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await runCli(args, (s) => (err += s));
  return { code, err };
}

describe('cli snapshot schedule', () => {
  it('schedule add - bad input is refused before any network (no NATS here), exit 2', async () => {
    const nats = `nats://127.0.0.1:${await getFreePort()}`;
    const add = (...args: string[]) =>
      run(['--nats', nats, 'snapshot', 'schedule', 'add', 'nightly', ...args]);
    const cases: [string[], string][] = [
      [['--region', 'eu-west', '--cron', '61 * * * *', '--keep-last', '2'], 'schedule.bad-cron'],
      [['--region', 'eu-west', '--cron', '0 3 * * *'], 'schedule.retention-required'],
      [
        ['--region', 'eu-west', '--cron', '0 3 * * *', '--keep-all', '--keep-last', '2'],
        'schedule.retention-conflict',
      ],
      [['--cron', '0 3 * * *', '--keep-last', '2'], 'schedule.bad-target'],
      [
        [
          '--region',
          'eu-west',
          '--cron',
          '0 3 * * *',
          '--keep-last',
          '2',
          '--time-zone',
          'Nowhere',
        ],
        'schedule.bad-time-zone',
      ],
    ];
    for (const [args, code] of cases) {
      const result = await add(...args);
      expect(result.code, args.join(' ')).toBe(ExitCode.usage);
      expect(result.err).toContain(`[${code}]`);
      expect(result.err).toContain('what to do:');
    }
    // Commander's own usage errors (a missing option) keep exit status 2 three levels down.
    expect((await run(['snapshot', 'schedule', 'add', 'nightly'])).code).toBe(ExitCode.usage);
  });

  it('status - the answering region shows its schedules: next run and last result', () => {
    const report = reportWith({
      schedules: [
        {
          id: 'nightly',
          cron: '0 3 * * *',
          timeZone: 'Europe/Berlin',
          paused: false,
          nextRunAt: Date.parse('2026-11-26T02:00:00Z'),
          running: false,
          lastRun: {
            operationId: 'op-1',
            slot: Date.parse('2026-11-25T02:00:00Z'),
            trigger: 'cron',
            status: 'failed',
            startedAt: Date.parse('2026-11-25T02:00:00Z'),
            finishedAt: Date.parse('2026-11-25T02:00:01Z'),
            name: null,
            size: null,
            durationMs: null,
            error: { code: 'snapshot.no-node', message: 'no node of region eu-west is up' },
          },
          lastSuccessAt: null,
          missedSinceStart: 0,
          problem: null,
        },
      ],
    });
    const text = renderStatus(report);
    expect(text).toContain('snapshot schedules of eu-west');
    expect(text).toMatch(
      /nightly\s+0 3 \* \* \* \(Europe\/Berlin\)\s+2026-11-26T02:00:00Z\s+FAILED/,
    );
    expect(text).toContain('[snapshot.no-node]');
  });
});
