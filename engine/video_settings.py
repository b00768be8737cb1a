"""Settings of the video half (``Settings.video``; env ``DATAENGINE_VIDEO__…``): what a video may be,
how it is sampled, and how its models run (the proposer and the page's tracker)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class VideoLimits(BaseModel):
    """A video over any of these fails alone, with the cap it broke as its reason."""

    max_duration_s: float = Field(600.0, gt=0, description="longest video mined, seconds")
    max_source_frames: int = Field(36_000, ge=1, description="most frames decoded from one source video")
    max_sampled_frames: int = Field(3_600, ge=1, description="most sampled frames kept per video")
    max_width: int = Field(4096, ge=16, description="widest video mined, pixels")
    max_height: int = Field(4096, ge=16, description="tallest video mined, pixels")
    max_frame_folder_files: int = Field(20_000, ge=1, description="most files in one frame folder")
    max_file_bytes: int = Field(
        512 * 1024 ** 2, ge=1024, le=16 * 1024 ** 3,
        description="the largest video file (folder, WebDataset member) read: its bytes are hashed and stored "
                    "whole (downloads have fetch.max_bytes)")
    codecs: list[str] = Field(
        default_factory=lambda: ["h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "prores"],
        description="video codecs mined (FFmpeg names); others fail as unsupported")


class VideoSettings(BaseModel):
    limits: VideoLimits = VideoLimits()
    sample_fps: float = Field(6.0, gt=0, le=120, description="frames sampled per second of video")
    frames_fps: float = Field(6.0, gt=0, le=120, description="the frame rate of a frame folder")
    keyframes: int = Field(3, ge=1, le=32, description="evenly spaced keyframes captioned and hashed")
    near_duplicate_distance: int = Field(
        6, ge=0, le=64, description="keyframe pHash distance under which a video is a near duplicate")
    frame_quality: int = Field(90, ge=50, le=100, description="JPEG quality of the stored sampled frames")
    proposer_model: str = Field("facebook/sam3", description="Sam3VideoModel: hub id or local directory (sam3)")
    tracker_model: str = Field("facebook/sam3", description="Sam3TrackerVideoModel: hub id or local directory (sam3)")
    score_threshold: float = Field(0.5, ge=0, le=1, description="a masklet's frames below this score are dropped")
    window_frames: int = Field(
        64, ge=2, le=4096,
        description="frames a session holds: backward propagation and mid-video clicks work on a window this "
                    "long around the prompt frame; long videos are proposed window by window, identities kept "
                    "by IoU on the overlap")
    window_overlap: int = Field(8, ge=1, le=1024,
                                description="frames two proposal windows share (at most half a window is used)")
    stitch_iou: float = Field(0.5, gt=0, le=1, description="masklets of two windows overlapping this much are one")
    min_masklet_frames: int = Field(1, ge=1, description="masklets shorter than this are dropped")
    max_masklets_per_phrase: int = Field(32, ge=1, le=1000,
                                         description="masklets kept per phrase of a video, best mean score first")
    mv_frames: int = Field(4, ge=1, le=32, description="frames of a masklet the mask verifier sees")
    ev_keyframes: int = Field(3, ge=1, le=32, description="keyframes the exhaustivity verifier sees")
    max_track_points: int = Field(32, ge=1, le=256, description="points one click request may carry")
