// What a task kind gives the page (a "mode", one per shown task):
//   question() → nodes       the question above the buttons
//   actions [{label, text, hint, tone, help, run}]  the verdict buttons (label: the word sent;
//                            hint: the key shown)
//   keys {key: fn}           its keys (e.key, one character lower-cased); the page's own keys are
//                            page.reserved and are never taken
//   help [[key, text]]       lines of the keyboard help
//   mount() / unmount()      shown / hidden; optionally undo(), changed, setTool(tool), keep()
// and what the page gives a kind (``page``): viewer, submit(label, masks), notify(text, kind),
// stageMessage(text, isError), lost(entry), api (api.js request), reserved (keys), brush {size}.

import {labelActions, labelHelp} from "../labels.js";

/** A mode whose verdicts are the task's label words, each sent as is (no masks); ``spec`` adds the
 * kind's question, hints, own keys and help, mount and unmount. */
export function labelMode(task, page, {hints = {}, keys = {}, help = [], question, mount, unmount = () => {}}) {
  const actions = labelActions(task.labels, {keys: task.keys, reserved: [...page.reserved, ...Object.keys(keys)], hints});
  return {
    question,
    actions: actions.map((a) => ({...a, run: () => page.submit(a.label)})),
    keys: {...keys, ...Object.fromEntries(actions.flatMap((a) => a.keys.map((k) => [k, () => page.submit(a.label)])))},
    help: [...labelHelp(actions), ...help],
    mount,
    unmount,
  };
}
