"""Train a classifier for your own labels, evaluate it, and use it.

    python examples/train_and_evaluate.py TRAIN_DIR TEST_DIR my_model/

TRAIN_DIR and TEST_DIR hold one subfolder of videos per label (squat/, push_up/, ...).
"""

import sys

import vidclass
from vidclass.training import evaluate, train


def main(train_dir: str, test_dir: str, out: str) -> int:
    result = train(train_dir, out, epochs=100, force=True)
    print(f"trained: {result.config['labels']}, written to {result.out}")
    report = evaluate(out, test_dir)
    print(f"accuracy on {len(report['videos'])} test videos: {report['accuracy']:.2f}")
    for row in report["videos"]:
        print(f"  {row['video']}: {row['true']} -> {row['predicted']} {row['score']:.2f}")
    model = vidclass.load_model(out)  # a trained folder is a model like any other
    print(model.classify(report["videos"][0]["video"], top_k=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
