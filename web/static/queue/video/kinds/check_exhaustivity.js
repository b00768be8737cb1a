// Video task kind check_exhaustivity: does every instance of the phrase have a masklet, on every frame?
// The verdict buttons are the task's label words (keys from task.keys: c / m / n).

import {el, term} from "../../ui.js";
import {labelMode} from "../../kinds/mode.js";
import {PLAYER_HELP, REPEATING, VideoStage, maskletColor} from "../stage.js";

export const title = "Check every instance";

const HINTS = {
  complete: {tone: "ok", help: "complete: every instance has a masklet"},
  missing: {tone: "warn", help: "some instances have no masklet"},
  not_present: {tone: "bad", help: "the phrase is not in the video"},
};

export function create(entry, page) {
  const t = entry.task;
  const masklets = t.masklets || [];
  const stage = new VideoStage(entry, page, {
    objects: () => masklets.map((m, i) => stage.maskletObject(m, {color: maskletColor(m, i)})),
    rows: () => masklets.map((m, i) => ({key: `m${m.id}`, label: `masklet #${m.id}`, color: maskletColor(m, i),
      spans: [[m.first_frame, m.last_frame]], extent: null, cut: null})),
  });
  const mode = labelMode(t, page, {
    hints: HINTS,
    keys: stage.keys,
    help: PLAYER_HELP,
    question: () => ["Does every ", term(t.phrase), " in the video have a masklet? ",
      el("span", {class: "muted", text: `(${masklets.length} masklet${masklets.length === 1 ? "" : "s"})`})],
    mount: () => stage.mount(),
    unmount: () => stage.unmount(),
  });
  return {...mode, repeating: REPEATING, stage};
}
