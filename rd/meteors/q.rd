<resource schema="epnml_meteors" resdir="meteors">
	<meta name="title">epnml meteors: meteor light curves of the Armagh/Bangor camera network classified by machine learning</meta>
	<meta name="description">
		Meteors recorded by the video cameras of the Armagh/Bangor network (the
		Europlanet AOP meteor case), one row per meteor and camera: time of the
		first and last video field, the sky track as a thin polygon around the
		fitted great circle (celestial frame, RA/Dec in degrees), peak and mean
		magnitude, angular speed and track length, and an unsupervised light-curve
		class (symmetric, early-peaked, late-peaked or flaring) with its fuzzy
		membership score as ml_score.  The same meteor recorded by another camera
		within a second is linked through meteor_linked_id.  A quicklook shows the
		light curve and the track.  Rows derived from simulated records say
		"SIMULATED" in processing_level_desc.
	</meta>
	<meta name="creationDate">2026-12-01T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">meteors</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="instrument">Armagh/Bangor meteor cameras</meta>
	<meta name="facility">Armagh Observatory</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<!-- the registry record's shortName (at most 16 characters) -->
		<meta name="shortName">epnml meteors</meta>
		<meta name="description">
			Meteors, one per camera record (EPN-TAP 2.0, dataproduct_type ci).
			The table is a view over the current rows of the store.
		</meta>
		<!-- every TAP response carries a DataLink service descriptor (adhoc:service)
			on granule_uid: the service dl below (service/dachs/userconfig.rd) -->
		<meta name="_associatedDatalinkService">
			<meta name="serviceId">dl</meta>
			<meta name="idColumn">granule_uid</meta>
		</meta>
		<mixin spatial_frame_type="celestial"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition target_region spatial_coordinate_description datalink_url access_url access_format access_estsize"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="meteor_id" type="text" ucd="meta.id"
			description="Record of the camera (its file name without extension)"/>
		<column name="meteor_camera" type="text" ucd="meta.id;instr"
			description="Camera of the network that recorded the meteor"/>
		<column name="meteor_peak_mag" type="double precision" unit="mag" ucd="phot.mag;stat.max"
			description="Peak (brightest) magnitude of the light curve"/>
		<column name="meteor_mean_mag" type="double precision" unit="mag" ucd="phot.mag;stat.mean"
			description="Magnitude of the mean flux of the light curve"/>
		<column name="meteor_class" type="text" ucd="src.class"
			description="Light-curve class: symmetric, early-peaked, late-peaked or flaring"/>
		<column name="meteor_cluster" type="integer" ucd="meta.code.class"
			description="Cluster of the classifier (several clusters may share a class)">
			<values nullLiteral="-1"/>
		</column>
		<column name="meteor_linked_id" type="text" ucd="meta.id.cross"
			description="meteor_id of the same meteor recorded by another camera (double station), NULL when none"/>
		<column name="meteor_frames" type="integer" ucd="meta.number"
			description="Number of video fields of the record">
			<values nullLiteral="-1"/>
		</column>
		<column name="meteor_t_peak" type="double precision" ucd="time.epoch;arith.ratio"
			description="Time of the peak relative to the record (0 first, 1 last field)"/>
		<column name="meteor_angular_speed" type="double precision" unit="deg/s" ucd="phys.veloc.ang"
			description="Angular speed along the fitted great-circle track"/>
		<column name="meteor_track_length" type="double precision" unit="deg" ucd="pos.angDistance"
			description="Length of the fitted track on the sky"/>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.meteors WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<table id="coverage_src" onDisk="True" adql="False">
		<meta name="description">
			The time and spectral extent of epn_core's rows under the names and units
			DaCHS' coverage updater knows (t_min/t_max in JD, em_min/em_max as vacuum
			wavelengths in m).  Not queryable through TAP: only `dachs limits` reads it.
			sky_ra/sky_dec are NULL for now: meteor tracks are on the sky (ICRS), but a
			spatial coverage (MOC) of their polygons is not written yet.
		</meta>
		<column name="t_min" type="double precision" unit="d" ucd="time.start;obs"/>
		<column name="t_max" type="double precision" unit="d" ucd="time.end;obs"/>
		<column name="em_min" type="double precision" unit="m" ucd="em.wl;stat.min"/>
		<column name="em_max" type="double precision" unit="m" ucd="em.wl;stat.max"/>
		<column name="sky_ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
		<column name="sky_dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT time_min AS t_min, time_max AS t_max,
					299792458.0 / NULLIF(spectral_range_max, 0) AS em_min,
					299792458.0 / NULLIF(spectral_range_min, 0) AS em_max,
					NULL::double precision AS sky_ra, NULL::double precision AS sky_dec
				FROM \schema.epn_core)
		</viewStatement>
	</table>

	<!-- Coverage for the registry records, from the rows: `dachs limits meteors/q`
		(service/provision.sh coverage, run after every ingest) fills it in from
		coverage_src (temporal in MJD, as VODataService wants).  No spatial coverage
		yet (see coverage_src). -->
	<coverage>
		<updater sourceTable="coverage_src"/>
	</coverage>

	<FEED source="%#epnml-datalink"/>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<data id="coverage">
		<make table="coverage_src"/>
	</data>

	<regSuite title="epnml meteors regression">
		<regTest title="epn_core answers through TAP">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_name FROM epnml_meteors.epn_core"
				>/tap/sync</url>
			<code>
				self.assertHasStrings("epnml_meteors")
			</code>
		</regTest>
	</regSuite>
</resource>
