"""The floor under the app's server cost: a trivial Gradio app with the app's endpoint shapes and no model.

    python benchmarks/load_http.py --server-cmd "python benchmarks/floor_app.py --port {port}" \\
        --direct --endpoints png,decode,number --mixed-clients 0 --warmup 10

Endpoints, each answering in microseconds of its own work:
- ``/decode`` (unqueued, like the app's): (model, a, b) -> a 28x28 uint8 image drawn from a and b, through a
  ``gr.Image`` output (PNG, Gradio's file cache), as the app's /decode returns.
- ``/number`` (unqueued): (model, a, b) -> a + b, through a ``gr.Number``: Gradio's cost for any endpoint.
- ``GET /api/decode.png?model=&a=&b=``: the same image from a plain route on the same server (its middleware,
  no event machinery), as the app's own route.
Binds to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np

ROUTE = "/api/decode.png"


def image(a, b) -> np.ndarray:
    y, x = np.mgrid[0:28, 0:28] / 27.0
    return (np.clip(0.5 + 0.5 * np.sin(6 * (float(a) * x + float(b) * y)), 0, 1) * 255).astype(np.uint8)


def build():
    import gradio as gr
    from PIL import Image
    from starlette.responses import Response
    from starlette.routing import Route

    with gr.Blocks(title="floor") as demo:
        model, a, b = gr.Textbox(visible=False), gr.Number(visible=False), gr.Number(visible=False)
        out_image, out_number = gr.Image(visible=False, format="png"), gr.Number(visible=False)
        button = gr.Button(visible=False)
        button.click(lambda m, a, b: image(a, b), [model, a, b], out_image, api_name="decode", queue=False)
        button.click(lambda m, a, b: float(a) + float(b), [model, a, b], out_number, api_name="number", queue=False)

    def plain(request):
        q = request.query_params
        buf = io.BytesIO()
        Image.fromarray(image(q.get("a", 0), q.get("b", 0)), mode="L").save(buf, format="png", compress_level=1)
        return Response(buf.getvalue(), media_type="image/png")

    return demo, [Route(ROUTE, plain, methods=["GET"])]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=7870)
    args = p.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo, routes = build()
    demo.queue(api_open=False)
    demo.launch(server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True, quiet=True,
                enable_monitoring=False, app_kwargs={"routes": routes})
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
