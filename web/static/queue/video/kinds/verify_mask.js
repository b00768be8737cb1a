// Video task kind verify_mask: is the yellow masklet one whole instance of the phrase, on every frame
// it covers? The verdict buttons are the task's label words (labels.js, keys from task.keys: a / r / u);
// the other masklets of the pair are drawn dimmed for context.

import {TARGET_COLOR} from "../../layers.js";
import {el, term} from "../../ui.js";
import {labelMode} from "../../kinds/mode.js";
import {PLAYER_HELP, REPEATING, VideoStage, maskletColor} from "../stage.js";

export const title = "Verify masklet";

const HINTS = {
  accept: {tone: "ok", help: "accept: one correct, complete instance on every frame"},
  reject: {tone: "bad", help: "reject: wrong object, sloppy or drifting mask"},
  ungroundable: {tone: "warn", help: "ungroundable: the phrase names nothing one could outline"},
};

export function create(entry, page) {
  const t = entry.task;
  const masklets = t.masklets || [];
  const target = masklets.find((m) => m.id === t.target_mask_id) || null;
  const stage = new VideoStage(entry, page, {
    objects: () => [ // the target on top
      ...masklets.filter((m) => m !== target).map((m) => stage.maskletObject(m,
        {color: maskletColor(m, masklets.indexOf(m)), alpha: 0.35, style: {fillAlpha: 60, edgeAlpha: 200}})),
      ...(target ? [stage.maskletObject(target, {color: TARGET_COLOR, style: {fillAlpha: 110, edgeAlpha: 255}})] : [])],
    rows: () => masklets.map((m, i) => ({key: `m${m.id}`, label: `masklet #${m.id}`,
      color: m === target ? TARGET_COLOR : maskletColor(m, i), spans: [[m.first_frame, m.last_frame]],
      extent: null, cut: null, selected: m === target})),
  });
  const mode = labelMode(t, page, {
    hints: HINTS,
    keys: stage.keys,
    help: PLAYER_HELP,
    question: () => ["Is the ", el("span", {class: "target-word", text: "yellow"}), " masklet one whole instance of ",
      term(t.phrase), " on every frame, and nothing else?"],
    mount() {
      stage.mount();
      if (!target) page.stageMessage("The masklet to verify is missing from this task: skip it (K).", true);
    },
    unmount: () => stage.unmount(),
  });
  return {...mode, repeating: REPEATING, stage};
}
