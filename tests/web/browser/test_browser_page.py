"""The page in a real browser (Debian's Chromium through Playwright) against a real indi-web running our
indiserver and Python simulators: profiles, drivers, the server, the live control panel, crashes, phone
width and the login form. Every step leaves a full-page screenshot in the artifacts directory.

Nothing sleeps: every step waits for a DOM state (Playwright's expect, or wait_for_function) with a
deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest
from web_helpers import INDI_WEB

from helpers import free_port

pytestmark = pytest.mark.timeout(300)

LONG = 60_000  # ms: a slew, an exposure or a driver restart on a busy machine
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(*args, **kwargs)


def url(server) -> str:
    return f"http://127.0.0.1:{server.port}/"


def prop(page, device: str, name: str):
    return page.locator(f'.prop[data-device="{device}"][data-name="{name}"]')


def driver_row(page, label: str):
    return page.locator(f'#running-drivers .driver-row[data-label="{label}"]')


def no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"the page is {width} px wide in a {viewport} px viewport"


def connect_device(page, device: str) -> None:
    page.locator(f'.device-tab[data-device="{device}"]').click()
    expect(page.locator(f'.device-panel[data-device="{device}"]')).to_be_visible()
    connect = prop(page, device, "CONNECTION").locator('.sw[data-member="CONNECT"]')
    connect.click()
    expect(connect).to_have_attribute("aria-pressed", "true", timeout=LONG)
    expect(page.locator(f'.device-tab[data-device="{device}"]')).to_have_attribute("data-connected", "true")


def record(page, locator, attribute: str | None, key: str) -> None:
    """Keep every distinct value the element's attribute (or text) takes in window[key]."""
    locator.evaluate(
        """(el, [attribute, key]) => {
             const read = () => attribute ? el.getAttribute(attribute) : el.textContent.trim();
             window[key] = [read()];
             new MutationObserver(() => {
               const value = read();
               if (window[key][window[key].length - 1] !== value) window[key].push(value);
             }).observe(el, {attributes: true, childList: true, characterData: true, subtree: true});
           }""", [attribute, key])


def test_profile_server_control_panel_crash_and_phone(web, page, shots):
    server = web()
    indi_port = free_port()
    page.goto(url(server))
    expect(page.locator("#live-pill")).to_have_attribute("data-live", "live")
    expect(page.locator("#profile-select")).to_have_value("Simulators")
    shots(page, "start")

    # A new profile with the telescope and CCD simulators, on a free port.
    page.locator("#profile-new-btn").click()
    page.locator("#profile-new-name").fill("Browser Rig")
    page.locator("#profile-create-btn").click()
    expect(page.locator("#profile-select")).to_have_value("Browser Rig")
    expect(page.locator("#selected-drivers .chip")).to_have_count(0)
    page.locator("#profile-port").fill(str(indi_port))
    page.locator("#driver-search").fill("simulator")
    expect(page.locator('.family[data-family="Agent"]')).to_be_hidden()
    for label in ("Telescope Simulator", "CCD Simulator"):
        page.locator(f'#driver-families input[data-label="{label}"]').check()
    expect(page.locator("#selected-drivers .chip")).to_have_count(2)
    expect(page.locator("#profile-dirty")).to_be_visible()
    shots(page, "profile-drivers-picked")
    page.locator("#profile-save-btn").click()
    expect(page.locator("#profile-dirty")).to_be_hidden()
    assert server.ok("GET", "/api/profiles/Browser Rig")["port"] == indi_port
    labels = {entry["label"] for entry in server.ok("GET", "/api/profiles/Browser Rig/labels")}
    assert labels == {"Telescope Simulator", "CCD Simulator"}
    shots(page, "profile-saved")

    # Start the server: both drivers really run.
    page.locator("#server-start-btn").click()
    expect(page.locator("#server-state")).to_have_text("running", timeout=LONG)
    for label in ("Telescope Simulator", "CCD Simulator"):
        expect(driver_row(page, label)).to_have_attribute("data-state", "running", timeout=LONG)
        expect(driver_row(page, label)).to_have_attribute("data-crashed", "false")
    expect(page.locator("#server-pill")).to_have_attribute("data-running", "true")
    expect(page.locator("#server-pill")).to_contain_text(f"Browser Rig · :{indi_port}")
    expect(page.locator("#clients .client-row").first).to_be_visible()   # indi-web's own live client
    shots(page, "server-running")

    # The control panel: connect the telescope and slew it.
    page.locator("#tab-control").click()
    expect(page.locator("#view-control")).to_be_visible()
    expect(page.locator('.device-tab[data-device="Telescope Simulator"]')).to_be_visible(timeout=LONG)
    expect(page.locator('.device-tab[data-device="CCD Simulator"]')).to_be_visible(timeout=LONG)
    connect_device(page, "Telescope Simulator")
    coords = prop(page, "Telescope Simulator", "EQUATORIAL_EOD_COORD")
    expect(coords).to_be_visible(timeout=LONG)
    shots(page, "telescope-connected")
    # Put the site at latitude 50 (the mount points at the pole): then the same RA 30 degrees lower is
    # well above the horizon, whatever the time.
    panel = page.locator('.device-panel[data-device="Telescope Simulator"]')
    panel.locator('.group-tab[data-group="Site Management"]').click()
    location = prop(page, "Telescope Simulator", "GEOGRAPHIC_COORD")
    expect(location).to_be_visible()
    location.locator('[data-member="LAT"] .m-input').fill("50")
    location.locator(".set-btn").click()
    expect(location.locator('[data-member="LAT"] .m-value')).to_have_text(re.compile(r"^\s*50:00:00"), timeout=LONG)
    expect(location).to_have_attribute("data-state", "Ok")
    panel.locator('.group-tab[data-group="Main Control"]').click()
    expect(coords).to_be_visible()
    dec_value = coords.locator('[data-member="DEC"] .m-value')
    expect(dec_value).to_have_text(re.compile(r"^\s*90:00:00\s*$"))
    dec_before = dec_value.text_content().strip()
    record(page, coords, "data-state", "__states")
    record(page, dec_value, None, "__decs")
    coords.locator('[data-member="DEC"] .m-input').fill("60:00:00")
    coords.locator(".set-btn").click()
    page.wait_for_function("""() => {
        const states = window.__states, busy = states.indexOf("Busy");
        return busy >= 0 && states.slice(busy).includes("Ok");
    }""", timeout=LONG)
    expect(coords).to_have_attribute("data-state", "Ok")
    expect(dec_value).to_have_text(re.compile(r"^\s*60:00:00\s*$"), timeout=LONG)
    decs = page.evaluate("window.__decs")
    assert decs[0] == dec_before and decs[-1] == "60:00:00" and dec_before != "60:00:00", decs
    shots(page, "telescope-slewed")

    # The CCD: connect it, expose, and see the preview image.
    connect_device(page, "CCD Simulator")
    exposure = prop(page, "CCD Simulator", "CCD_EXPOSURE")
    expect(exposure).to_be_visible(timeout=LONG)
    exposure.locator('[data-member="CCD_EXPOSURE_VALUE"] .m-input').fill("0.5")
    exposure.locator(".set-btn").click()
    preview = page.locator('.device-panel[data-device="CCD Simulator"] .preview img')
    expect(preview).to_be_visible(timeout=LONG)
    page.wait_for_function("""() => {
        const img = document.querySelector('.device-panel[data-device="CCD Simulator"] .preview img');
        return img && img.complete && img.naturalWidth > 0 && img.getAttribute("src").includes("/api/preview/");
    }""", timeout=LONG)
    expect(exposure).to_have_attribute("data-state", "Ok", timeout=LONG)
    expect(page.locator("#messages .msg").first).to_be_visible()
    shots(page, "ccd-image")

    # Phone width: the control panel, then the manager, without horizontal scrolling.
    page.set_viewport_size(PHONE)
    expect(preview).to_be_visible()
    no_horizontal_overflow(page)
    shots(page, "phone-control-panel")
    page.locator("#tab-manager").click()
    expect(page.locator("#view-manager")).to_be_visible()
    no_horizontal_overflow(page)
    shots(page, "phone-manager")
    page.set_viewport_size(DESKTOP)

    # Kill the CCD driver: the page shows it crashed (and restarting, or running again).
    ccd = next(d for d in server.full_status()["drivers"] if d["label"] == "CCD Simulator")
    expect(driver_row(page, "CCD Simulator")).to_have_attribute("data-pid", str(ccd["pid"]))
    os.kill(ccd["pid"], signal.SIGKILL)
    row = driver_row(page, "CCD Simulator")
    expect(row).to_have_attribute("data-crashed", "true", timeout=LONG)
    expect(row.locator('.badge[data-state="crashed"]')).to_be_visible()
    shots(page, "ccd-crashed")
    expect(row).to_have_attribute("data-state", "running", timeout=LONG)
    expect(row).not_to_have_attribute("data-pid", str(ccd["pid"]))
    expect(row.locator(".dr-exit")).to_contain_text("signal 9")
    expect(driver_row(page, "Telescope Simulator")).to_have_attribute("data-crashed", "false")
    shots(page, "ccd-restarted")
    # The restarted driver's device is back in the control panel, still the one shown.
    page.locator("#tab-control").click()
    expect(page.locator('.device-panel[data-device="CCD Simulator"]')).to_be_visible(timeout=LONG)
    expect(prop(page, "CCD Simulator", "CONNECTION")).to_be_visible()
    page.locator("#tab-manager").click()

    # One driver at a time: restart the telescope's (a new process), stop it, start it again.
    telescope = driver_row(page, "Telescope Simulator")
    old_pid = telescope.get_attribute("data-pid")
    telescope.locator("button", has_text="Restart").click()
    expect(telescope).not_to_have_attribute("data-pid", old_pid, timeout=LONG)
    expect(telescope).to_have_attribute("data-state", "running", timeout=LONG)
    telescope.locator("button", has_text="Stop").click()
    expect(telescope).to_have_count(0, timeout=LONG)
    stopped = page.locator('#stopped-drivers .driver-row[data-label="Telescope Simulator"]')
    expect(stopped).to_be_visible()
    shots(page, "telescope-stopped")
    stopped.locator("button", has_text="Start").click()
    expect(telescope).to_have_attribute("data-state", "running", timeout=LONG)
    expect(stopped).to_have_count(0)

    # Stop the server from the page.
    page.locator("#server-stop-btn").click()
    expect(page.locator("#server-state")).to_have_text("stopped", timeout=LONG)
    expect(page.locator("#running-drivers .driver-row")).to_have_count(0)
    page.locator("#tab-control").click()
    expect(page.locator("#no-devices")).to_be_visible(timeout=LONG)
    assert page.js_errors == []


def test_phone_width_fresh_page(web, page, shots):
    server = web()
    page.set_viewport_size(PHONE)
    page.goto(url(server))
    expect(page.locator("#profile-select")).to_have_value("Simulators")
    page.locator("#driver-search").fill("telescope")
    expect(page.locator('.family[data-family="Telescopes"]')).to_have_attribute("open", "")
    no_horizontal_overflow(page)
    shots(page, "phone-manager")
    page.locator("#tab-control").click()
    expect(page.locator("#no-devices")).to_be_visible()
    no_horizontal_overflow(page)
    shots(page, "phone-control-empty")
    assert page.js_errors == []


def test_login_form(web, page, shots, tmp_path, home_env):
    conf = tmp_path / "auth-conf"
    stored = subprocess.run([INDI_WEB, "--conf", str(conf), "--set-password"], input="s3cret stars\n", text=True,
                            capture_output=True, env=home_env, timeout=60)
    assert stored.returncode == 0, stored.stderr
    server = web("--password", conf_dir=conf)
    assert server.get("/api/profiles").status_code == 401
    page.goto(url(server))
    expect(page.locator("#login-overlay")).to_be_visible()
    shots(page, "login")
    page.locator("#login-password").fill("wrong")
    page.locator("#login-submit").click()
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-overlay")).to_be_visible()
    page.locator("#login-password").fill("s3cret stars")
    page.locator("#login-submit").click()
    expect(page.locator("#login-overlay")).to_be_hidden()
    expect(page.locator("#profile-select")).to_have_value("Simulators")
    expect(page.locator("#live-pill")).to_have_attribute("data-live", "live")
    expect(page.locator("#logout-btn")).to_be_visible()
    shots(page, "logged-in")
    page.locator("#logout-btn").click()
    expect(page.locator("#login-overlay")).to_be_visible()
    assert page.request.get(url(server) + "api/profiles").status == 401
    assert page.js_errors == []


def test_live_connection_comes_back(web, page, shots):
    port = free_port()
    first = web("--port", str(port))
    page.goto(url(first))
    live = page.locator("#live-pill")
    expect(live).to_have_attribute("data-live", "live")
    first.stop()
    expect(live).to_have_attribute("data-live", "offline")
    expect(live).to_contain_text("Offline")
    shots(page, "offline")
    web("--port", str(port))
    expect(live).to_have_attribute("data-live", "live", timeout=LONG)
    expect(page.locator("#profile-select")).to_have_value("Simulators")
    shots(page, "back")
    assert page.js_errors == []
