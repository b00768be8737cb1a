// What the page shows of a task, pure: an image task's image, or a video task's first frame to show
// (the masklet under verification starts where it starts; other kinds start at frame 0) with the
// video's size. The controller loads that picture with the lease, so a video task is shown at once.

import {clampFrame, frameUrl} from "./frames.js";

/** The task is a video task (the API's ``media``). */
export function isVideo(task) {
  return task?.media === "video" && !!task.video;
}

/** The frame a video task opens on. */
export function startFrame(task) {
  const n = Number(task.video?.frame_count) || 0;
  if (task.kind === "verify_mask") {
    const target = (task.masklets || []).find((m) => m.id === task.target_mask_id);
    if (target) return clampFrame(target.first_frame, n);
  }
  return 0;
}

/** {url, width, height, frame}: the picture to load first (frame: null for an image task). */
export function taskPicture(task) {
  if (!isVideo(task)) return {url: task.image?.url, width: task.image?.width, height: task.image?.height, frame: null};
  const frame = startFrame(task);
  return {url: frameUrl(task.frame_url, task.video.id, frame), width: task.video.width, height: task.video.height, frame};
}
