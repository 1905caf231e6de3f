import cv2
import numpy as np

from moodstream.detection.face_crop import crop_face, eye_angle


def test_crop_has_the_requested_size_and_is_centred_on_the_box():
    gray = np.zeros((200, 300), np.uint8)
    gray[80:120, 130:170] = 255  # a bright square "face"
    crop = crop_face(gray, (130, 80, 40, 40), (64, 48), margin=1.0)
    assert crop.shape == (64, 48)
    # The 40 px square, scaled to the crop's width (48 px), sits in the middle of its height:
    # bright from row 8 to row 54 down the centre, dark above and below, bright across.
    column, row = crop[:, 24], crop[32]
    assert (column[8:55] == 255).all(), column.tolist()
    assert (column[:7] == 0).all() and (column[56:] == 0).all(), column.tolist()
    assert (row >= 200).all(), row.tolist()


def test_tilted_eyes_are_levelled():
    gray = np.zeros((200, 200), np.uint8)
    left, right = (80, 90), (120, 110)  # right eye lower: head tilted
    cv2.circle(gray, left, 6, 255, -1)
    cv2.circle(gray, right, 6, 255, -1)
    assert eye_angle(left, right) > 20
    crop = crop_face(gray, (60, 60, 80, 80), (64, 64), left, right, margin=1.0)
    ys, xs = np.nonzero(crop > 128)
    left_blob, right_blob = ys[xs < 32].mean(), ys[xs >= 32].mean()
    assert abs(left_blob - right_blob) < 2, "eyes end up on one horizontal line"


def test_no_landmarks_means_no_rotation():
    assert eye_angle(None, (1, 1)) == 0.0
